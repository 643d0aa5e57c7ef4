"""Stability study on a user-defined target: is it *stably* approximated by RNNs?

The target is a linear functional with a user kernel (a power law plus a
slow exponential; not an exponential sum):

    rho(t) = (1 + t)^{-1.2} + 0.3 exp(-0.05 t)

(:func:`~dynmem.fit_exponential_sum` fits non-negative weights, so the kernel
should be completely monotone - a delayed bump cannot be fitted this way; train
a :class:`~dynmem.EulerRNN` with :func:`dynmem.train` for such kernels.)

For each width m the kernel is fitted on t = 0..T by an m-term exponential
sum (:func:`dynmem.fit_exponential_sum`, free exponents by variable
projection), realised as a diagonal linear RNN ``W = -diag(mu)``,
``U = c = sqrt(a)``.  Each fit is perturbed (:func:`dynmem.perturbation_curve`,
random block-spectral perturbations plus ``W + beta I``), and
:func:`dynmem.stability_boundary` reports per width the spectral margin,
stability radius, blow-up beta and crossings, their trends in m and a verdict
([WLL] Thm 3.9: a polynomially decaying memory should give a boundary that
shrinks with m).

Run ``python examples/stability_study.py [--out FIG.png]`` (about 10-20 s).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import dynmem
from dynmem.targets import LinearFunctional
from dynmem.training import fit_exponential_sum


def user_kernel(s):
    s = np.asarray(s, dtype=float)
    return (1.0 + s) ** -1.2 + 0.3 * np.exp(-0.05 * s)


def main(out: str | None = "stability_study.png", *, widths=(2, 4, 6, 8), T: float = 300.0,
         n_samples: int = 100, seed: int = 0, n_starts: int = 4, verbose: bool = True) -> dict:
    """Run the study; write the figure to ``out`` (skipped when ``None``) and return the numbers."""
    start = time.perf_counter()
    target = LinearFunctional(user_kernel, panel=1.0)
    t = np.arange(0.0, T + 1.0)
    rho = target.kernel(t)[:, 0]
    betas = np.geomspace(1e-4, 1.0, 17)
    t_grid = np.arange(1.0, T + 1.0)
    curves, fits = {}, {}
    for m in widths:
        fit = fit_exponential_sum(t, rho, m, n_starts=n_starts)
        fits[m] = fit
        curves[m] = dynmem.perturbation_curve(fit.to_linear_rnn(), target, betas, n_samples=n_samples,
                                              t_grid=t_grid, rng=seed + m, ascent_steps=0)
    sb = dynmem.stability_boundary(curves, K=10.0)
    if verbose:
        print(f"target: rho(t) = (1+t)^-1.2 + 0.3 exp(-0.05 t), fitted on t = 0..{T:g}")
        print(sb.table())
        print("verdict:", sb.verdict)
        print(sb.note)
    if out is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (ax, ax2, ax3) = plt.subplots(1, 3, figsize=(14, 4))
        for m in widths:
            ax.loglog(t[1:], np.abs(fits[m](t[1:])), lw=1, label=f"fit m={m}")
        ax.loglog(t[1:], rho[1:], "k--", lw=1.5, label="target")
        ax.set_xlabel("t")
        ax.set_ylabel(r"$\rho(t)$")
        ax.legend(fontsize=7)
        for m in widths:
            e = curves[m].max_error
            ax2.plot(betas, np.where(np.isfinite(e), e, np.nan), marker="o", ms=3, label=f"m={m}")
        for x in sb.crossing[np.isfinite(sb.crossing)]:
            ax2.axvline(x, color="k", lw=0.5, ls=":")
        ax2.set_xscale("log")
        ax2.set_yscale("log")
        ax2.set_xlabel(r"$\beta$")
        ax2.set_ylabel(r"$E_m(\beta)$ (sup error on t = 1..T)")
        ax2.legend(fontsize=7)
        ms = np.asarray(sb.widths, float)
        for vals, lab in ((sb.margin, "margin"), (sb.radius, "stability radius"), (sb.blowup, "blow-up beta")):
            v = np.where(np.isfinite(vals) & (vals > 0), vals, np.nan)
            ax3.loglog(ms, v, marker="o", label=lab)
        ax3.set_xlabel("m")
        ax3.set_title(sb.verdict, fontsize=9)
        ax3.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out, dpi=100)
        plt.close(fig)
        if verbose:
            print("wrote", out)
    result = {
        "widths": [int(m) for m in sb.widths], "error0": sb.error0.tolist(), "margin": sb.margin.tolist(),
        "radius": sb.radius.tolist(), "blowup": sb.blowup.tolist(), "crossing": sb.crossing.tolist(),
        "verdict": sb.verdict, "fit_sup_error": [fits[m].sup_error for m in widths],
        "seconds": time.perf_counter() - start,
    }
    if verbose:
        print(f"done in {result['seconds']:.1f} s")
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="stability_study.png", help="figure path")
    ap.add_argument("--T", type=float, default=300.0, help="fitting horizon")
    args = ap.parse_args()
    main(out=args.out, T=args.T)
