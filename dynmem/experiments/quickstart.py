"""``dynmem quickstart``: simulate a random tanh CTRNN and compute a loss gradient two ways."""

from __future__ import annotations

import os
import time

import numpy as np

__all__ = ["quickstart", "warmup"]


def quickstart(*, hidden: int = 16, inputs: int = 2, t_end: float = 10.0, seed: int = 0, out: str = "quickstart.png",
               verbose: bool = True) -> dict:
    """Simulate a CTRNN, compute its loss gradient two ways, and write a figure.

    Returns a dict of the numbers it printed (loss, gradient norms, the
    relative difference between the adjoint and the Euler-BPTT gradients,
    timings and the figure path).
    """
    import matplotlib

    from .. import __version__

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..adjoint import adjoint_gradient
    from ..inputs import from_sequence
    from ..models import CTRNN
    from ..recurrences import value_and_grad
    from ..simulate import simulate

    rng = np.random.default_rng(seed)
    model = CTRNN.random(hidden, inputs, spectral_abscissa=-0.3, bias_scale=0.1, rng=rng)
    dt_in = 0.5
    X = rng.standard_normal((int(round(t_end / dt_in)), inputs))
    x = from_sequence(X, dt_in)
    t = np.linspace(0.0, t_end, 401)

    # First calls compile the numba kernels (or load them from numba's cache);
    # time that separately so the timings below are the steady-state cost.
    t0 = time.perf_counter()
    simulate(model, x, [0.0, dt_in])
    adjoint_gradient(model, x, [dt_in], [0.0])
    t_warm = time.perf_counter() - t0

    t0 = time.perf_counter()
    sim = simulate(model, x, t, rtol=1e-8, atol=1e-10)
    t_sim = time.perf_counter() - t0

    t_obs = np.arange(1, int(round(t_end / dt_in)) + 1) * dt_in
    y_obs = np.sin(t_obs)  # an arbitrary target for the loss
    t0 = time.perf_counter()
    adj = adjoint_gradient(model, x, t_obs, y_obs, rtol=1e-8, atol=1e-10)
    t_adj = time.perf_counter() - t0

    # The same loss through the Euler recurrence with a fine step: its BPTT
    # gradient approaches the adjoint gradient as dt -> 0 (error O(dt)).
    dt = 0.005
    per = int(round(dt_in / dt))
    Xf = np.repeat(X, per, axis=0)[None]
    euler = model.discretize(dt)
    Y = np.zeros((1, Xf.shape[1]))
    mask = np.zeros((1, Xf.shape[1]))
    idx = (np.arange(1, t_obs.size + 1) * per) - 1  # output k is c^T h_{k+1} at time (k+1) dt
    Y[0, idx] = y_obs
    mask[0, idx] = 1.0
    from ..recurrences import backward, forward

    forward(euler, Xf[:, :2])  # compile / load the recurrence kernel
    t0 = time.perf_counter()
    traj = forward(euler, Xf)
    bp = backward(euler, traj, mask * (traj.y - Y))
    t_bptt = time.perf_counter() - t0
    rel = float(np.linalg.norm(bp.flat - adj.flat) / np.linalg.norm(adj.flat))

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(t, sim.h[:, : min(hidden, 6)], lw=1)
    axes[0].set(title=f"hidden states $h(t)$ ($m = {hidden}$, first 6)", xlabel="$t$")
    axes[1].plot(t, sim.y, label=r"$y(t) = c^\top h(t)$")
    axes[1].plot(t_obs, y_obs, "o", ms=3, label="targets")
    axes[1].set(title=f"output, loss = {adj.loss:.3g}", xlabel="$t$")
    axes[1].legend(fontsize=8)
    axes[2].plot(adj.flat, bp.flat, ".", ms=3)
    lim = np.max(np.abs(adj.flat))
    axes[2].plot([-lim, lim], [-lim, lim], "k-", lw=0.5)
    axes[2].set(title=f"gradients: rel. diff {rel:.2e} (Euler $dt = {dt}$)", xlabel=r"adjoint $dL/d\theta$",
                ylabel=r"Euler BPTT $dL/d\theta$")
    fig.set_layout_engine("constrained")
    from ..io import atomic_savefig

    atomic_savefig(fig, out, dpi=120)
    plt.close(fig)

    summary = dict(hidden=hidden, loss=adj.loss, grad_norm=float(np.linalg.norm(adj.flat)), rel_diff_euler_bptt=rel,
                   time_first_calls=t_warm, time_simulate=t_sim, time_adjoint=t_adj, time_bptt=t_bptt, nfev=sim.nfev, figure=os.path.abspath(out))
    if verbose:
        print(f"dynmem {__version__} quickstart: tanh CTRNN, m = {hidden}, d = {inputs}, t in [0, {t_end}]")
        print(f"  first calls (numba compile or cache load): {t_warm:6.2f} s")
        print(f"  simulate ({sim.method}, rtol 1e-8):    {t_sim * 1e3:8.1f} ms, {sim.nfev} RHS evaluations")
        print(f"  adjoint gradient (rtol 1e-8):    {t_adj * 1e3:8.1f} ms, loss = {adj.loss:.6g}, |grad| = {summary['grad_norm']:.6g}")
        print(f"  Euler BPTT gradient (dt={dt}):  {t_bptt * 1e3:8.1f} ms, relative difference to adjoint = {rel:.2e} (O(dt))")
        print(f"  figure written to {summary['figure']}")
    return summary




def warmup(*, verbose: bool = True) -> dict:
    """Compile (or load from numba's on-disk cache) the kernels of the common entry points, ahead of use.

    Calls ``simulate``, ``adjoint_gradient``, ``value_and_grad``,
    ``memory_function`` and ``gated_forward`` once on small inputs and
    returns ``{name: seconds}`` of each first call (after an install, in a
    CI image, before a timing).
    """
    from ..adjoint import adjoint_gradient
    from ..models.gated import GRUCell, gated_forward
    from ..inputs import PiecewiseConstant
    from ..memory import memory_function
    from ..models import CTRNN
    from ..recurrences import value_and_grad
    from ..simulate import simulate

    model = CTRNN.random(4, 2, spectral_abscissa=-0.5, rng=0)
    x = PiecewiseConstant([0, 1, 2], [[1.0, 0.0], [0.0, -1.0]])
    X = np.zeros((1, 8, 2))
    calls = [
        ("simulate", lambda: simulate(model, x, np.linspace(0, 2, 5))),
        ("adjoint_gradient", lambda: adjoint_gradient(model, x, [1.0, 2.0], [0.1, 0.0])),
        ("value_and_grad", lambda: value_and_grad(model.discretize(0.1), X, np.zeros((1, 8)))),
        ("memory_function", lambda: memory_function(CTRNN.random(4, 1, rng=1), np.linspace(0, 5, 11))),
        ("gated_forward", lambda: gated_forward(GRUCell.random(4, 2, rng=0), X)),
    ]
    seconds = {}
    for name, call in calls:
        t0 = time.perf_counter()
        call()
        seconds[name] = time.perf_counter() - t0
        if verbose:
            print(f"  {name:<18s} {seconds[name]:7.2f} s", flush=True)
    return seconds
