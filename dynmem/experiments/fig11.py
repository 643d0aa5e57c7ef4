"""[WLL] Fig. 11: the memory of the multistable tanh system ``W = [[1, 1], [-4, -3]]`` (docs/theory.md section 2)."""

from __future__ import annotations

import sys

import numpy as np

from ..io import atomic_savefig
from . import verbose
from .record import Experiment

TITLE = "[WLL] Fig. 11: non-decaying memory of a Hurwitz tanh RNN"
CLAIM = ("A tanh RNN with Hurwitz W (double eigenvalue -1) is multistable: small inputs give decaying memory, "
         "large ones do not.")
PROTOCOLS = ("dynmem",)


def config(size: str = "quick", protocol: str | None = None, **changes) -> dict:
    """Fig. 11's settings: the ``"dynmem"`` protocol and ``size`` (``"quick"``: a coarser basin grid); it has no other settings."""
    if (protocol or "dynmem") != "dynmem":
        raise ValueError(f"fig11 runs the 'dynmem' protocol only; got {protocol!r}.")
    if size not in ("quick", "full"):
        raise ValueError(f"`size` must be 'quick' or 'full'; got {size!r}.")
    unknown = sorted(k for k in changes if k != "workdir")
    if unknown:
        raise ValueError(f"unknown fig11 setting(s) {unknown}; fig11 has none besides size and protocol.")
    return {"experiment": "fig11", "protocol": "dynmem", "size": size}


def run(config: dict, *, executor=None, progress: bool = False) -> dict:
    """The memory curves by input amplitude and the basin grid (:func:`run_fig11`); ``executor`` is not used."""
    r = run_fig11(quick=config["size"] == "quick", progress=progress)
    r.update(protocol_name="dynmem", config=dict(config), size=config["size"])
    return r


def plot(result: dict, path: str) -> None:
    """The figure of :func:`plot_fig11`."""
    plot_fig11(result, path)


def verdict(result: dict) -> dict:
    """Reproduced when small inputs (amplitude <= 1) give exponential memory and some larger one does not."""
    kinds = {a: c["kind"] for a, c in result["curves"].items()}
    small = all(kinds[a] == "exponential" for a in kinds if float(a) <= 1.0)
    large = any(kinds[a] in ("non-decaying", "growing") for a in kinds if float(a) > 1.0)
    v = "reproduced" if (small and large) else ("partly" if (small or large) else "not reproduced")
    why = (f"alpha(W) = {result['alpha']:.3g}; decay by amplitude: {kinds}; basin grid: {result['starts_to_zero']} "
           f"starts to 0, {result['starts_to_corners']} to the corners")
    return {"verdict": v, "why": why, "numbers": {"kinds": kinds, "starts_to_zero": result["starts_to_zero"],
                                                   "starts_to_corners": result["starts_to_corners"]}}


def basin_ends(W, grid, *, t_end: float = 200.0, rtol: float = 1e-9, atol: float = 1e-12) -> np.ndarray:
    """Where the flow ``dv/dt = (1 - v^2) * (W v)`` takes each start of ``grid x grid``: ends of shape (n^2, 2).

    The flow is that of ``v = tanh(z)`` for ``dz/dt = W tanh(z)`` (docs/theory.md
    section 2), which is the CTRNN ``dh/dt = tanh(W h)`` in ``z = W h``; all
    ``n^2`` starts ``h_0 = W^{-1} artanh(v_0)`` are one batch of
    :func:`dynmem.ode.solve_ctrnn` (Dormand-Prince, one compiled call), and
    ``v = tanh(W h(t_end))``.  In ``h`` the corners ``|v_i| = 1`` are reached
    without the rounding of ``1 - v^2`` to 0 that stalls an integration in ``v``.
    Starts are row-major: ``(grid[i], grid[j])`` is row ``i * n + j``.
    """
    from .._validation import as_float_array, check_positive
    from ..inputs import PiecewiseConstant
    from ..models import CTRNN
    from ..ode import solve_ctrnn

    W = as_float_array("W", W, shape=(2, 2))
    grid = as_float_array("grid", grid, ndim=1)
    if np.any(np.abs(grid) >= 1.0):
        raise ValueError(f"`grid` must lie in (-1, 1) (v = tanh(z)); got max |grid| = {float(np.abs(grid).max())!r}.")
    if abs(np.linalg.det(W)) < 1e-12 * max(1.0, float(np.abs(W).max()) ** 2):
        raise ValueError(f"`W` must be invertible (z = W h); got det(W) = {float(np.linalg.det(W))!r}.")
    t_end = check_positive("t_end", t_end)
    V0 = np.array([[a, b] for a in grid for b in grid])
    H0 = np.linalg.solve(W, np.arctanh(V0).T).T
    model = CTRNN(W, np.zeros((2, 1)), np.zeros(2), np.array([1.0, 0.0]), activation="tanh")
    rest = PiecewiseConstant([0.0, t_end], [[0.0]])
    res = solve_ctrnn(model, [rest] * len(V0), np.array([t_end]), h0=H0, rtol=rtol, atol=atol)
    if not res.success:
        raise RuntimeError(f"the basin grid integration failed: {res.message}")
    return np.tanh(res.h[:, -1] @ W.T)


def run_fig11(*, quick: bool = True, seeds=(0,), progress: bool = False) -> dict:
    """The multistable tanh system of docs/theory.md section 2 ([WLL] Fig. 11)."""
    from ..memory import fit_decay, memory_function
    from ..models import CTRNN
    from ..spectra import spectral_abscissa

    W = np.array([[1.0, 1.0], [-4.0, -3.0]])
    model = CTRNN(W, np.eye(2), np.zeros(2), np.array([1.0, 0.0]), activation="tanh")
    t = np.linspace(0, 60, 600 if quick else 2400)
    amps = [0.01, 0.1, 1.0, 3.0, 5.0]
    curves = {}
    for a in amps:
        res = memory_function(model, t, amplitudes=[a])
        fit = fit_decay(t, res.values)
        curves[str(a)] = dict(values=res.values, kind=fit.kind, rate=fit.rate, note=fit.note)
        if progress and verbose():
            print(f"  fig11 amplitude {a}: {fit.kind}", file=sys.stderr, flush=True)
    n = 9 if quick else 21
    grid = np.linspace(-0.95, 0.95, n)
    ends = basin_ends(W, grid)
    return dict(experiment="fig11", quick=quick, alpha=spectral_abscissa(W), t=t, amplitudes=amps, curves=curves,
                grid=grid, ends=ends, starts_to_zero=int(np.sum(np.max(np.abs(ends), axis=1) < 1e-3)),
                starts_to_corners=int(np.sum(np.min(np.abs(ends), axis=1) > 0.999)))


def plot_fig11(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..plotting import finish_figure

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    t = np.asarray(result["t"], float)
    for a, c in result["curves"].items():
        v = np.asarray([float(x) for x in c["values"]])
        ok = v > 0
        axes[0].semilogy(t[ok], v[ok], label=f"amplitude {a}: {c['kind']}")
    axes[0].set(title=rf"memory of tanh, $W = [[1, 1], [-4, -3]]$, $\alpha(W) = {result['alpha']:.2g}$",
                xlabel="$t$", ylabel="$M(t)$")
    axes[0].legend(fontsize=7)
    grid = np.asarray(result["grid"], float)
    ends = np.asarray(result["ends"], float)
    X, Y = np.meshgrid(grid, grid, indexing="ij")
    to_zero = np.max(np.abs(ends), axis=1) < 1e-3
    axes[1].scatter(X.ravel()[to_zero], Y.ravel()[to_zero], s=12, label=r"start $\to 0$")
    axes[1].scatter(X.ravel()[~to_zero], Y.ravel()[~to_zero], s=12, label=r"start $\to$ a corner")
    axes[1].set(title=r"basins of $\dot v = (1 - v^2) \odot (W v)$", xlabel="$v_1$", ylabel="$v_2$")
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    finish_figure(fig, result, extra="[WLL] Fig. 11, a Hurwitz tanh RNN with non-decaying memory")
    atomic_savefig(fig, path, dpi=100)
    plt.close(fig)

EXPERIMENT = Experiment(name="fig11", title=TITLE, claim=CLAIM, protocols=PROTOCOLS, config=config, run=run,
                        plot=plot, verdict=verdict)
