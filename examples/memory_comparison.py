"""Compare the memory of RNNs and targets ([WLL] Def. 3.1), with fitted decays.

Four memory functions on one figure (semilog and log-log panels):

* a linear RNN (closed form |U^T e^{W^T t} c|_1),
* a tanh CTRNN (exact flow, sup over directions and amplitudes),
* the exponential target rho(t) = 0.9^t,
* the power-law target rho(t) = (1 + t)^{-1.5}.

Usage: python examples/memory_comparison.py [--out memory_comparison.png]
"""

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import dynmem as dm  # noqa: E402
from dynmem.plotting import plot_memory_panels  # noqa: E402
from dynmem.targets import ExponentialKernel, PowerLawKernel  # noqa: E402


def main(out="memory_comparison.png"):
    t = np.linspace(0.0, 60.0, 601)
    curves = {
        "linear RNN (m=8)": dm.memory_function(dm.LinearRNN.random(8, 1, spectral_abscissa=-0.2, normal=True, rng=0), t),
        "tanh CTRNN (m=8)": dm.memory_function(dm.CTRNN.random(8, 1, spectral_abscissa=-0.2, normal=True, rng=1), t,
                                               amplitudes=[0.1, 1.0, 5.0]),
        "target 0.9^t": dm.memory_function(ExponentialKernel.discrete(0.9), t),
        "target (1+t)^-1.5": dm.memory_function(PowerLawKernel(1.5), t),
    }
    fits = {name: dm.fit_decay(res.t, res.values) for name, res in curves.items()}
    for name, fit in fits.items():
        detail = {"exponential": f"rate {fit.rate:.4g}", "polynomial": f"exponent {fit.exponent:.4g}"}.get(fit.kind, "")
        print(f"{name:22s} {fit.kind:13s} {detail}")
    axes = plot_memory_panels(curves)
    axes[0].figure.suptitle("memory functions and their fitted decays")
    axes[0].figure.tight_layout()
    axes[0].figure.savefig(out, dpi=110)
    plt.close(axes[0].figure)
    print(f"figure written to {out}")
    return fits


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="memory_comparison.png")
    main(parser.parse_args().out)
