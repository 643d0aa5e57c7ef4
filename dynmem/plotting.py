"""Matplotlib helpers: memory curves and the kernel-limit width sweeps.

Every function takes ``ax=None`` (a new figure and axes are made when it is
None), draws, and returns the Axes.  Nothing here calls ``plt.show()``.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ._validation import as_float_array, check_choice
from .decay import DecayFit, fit_decay
from .memory import MemoryResult

__all__ = ["plot_memory", "plot_memory_panels", "decay_curve", "plot_error_vs_width", "plot_trajectories"]

_SCALES = ("semilogy", "loglog", "linear")


def decay_curve(fit: DecayFit, t) -> np.ndarray:
    """The fitted model of a :class:`~dynmem.memory.DecayFit` evaluated at ``t``.

    ``C e^{-beta t}`` (with the ``(1 + t)^q`` prefactor when that model won),
    ``C (t + s)^{-p}``, or the plateau level; NaN for "undetermined".
    """
    t = as_float_array("t", t, ndim=1)
    if fit.kind == "exponential":
        return fit.constant * (1 + t) ** fit.power * np.exp(-fit.rate * t)
    if fit.kind == "polynomial":
        return fit.constant * (t + fit.shift) ** (-fit.exponent)
    if fit.kind == "non-decaying":
        return np.full(t.shape, fit.constant)
    return np.full(t.shape, np.nan)


def _curve(item) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(item, MemoryResult):
        return item.t, item.values
    t, M = item
    return as_float_array("t", t, ndim=1), as_float_array("M", M, ndim=1, finite=False)


def _label_for(fit: DecayFit) -> str:
    if fit.kind == "exponential":
        return f"fit: e^(-{fit.rate:.3g} t)"
    if fit.kind == "polynomial":
        return f"fit: (t + {fit.shift:.2g})^(-{fit.exponent:.3g})"
    return f"fit: {fit.kind}"


def plot_memory(curves, *, ax=None, scale: str = "semilogy", labels: Sequence[str] | None = None,
                fit: bool = True, title: str | None = None):
    """Plot one or several memory curves, with their fitted decays.

    Parameters
    ----------
    curves : MemoryResult, (t, M) pair, or a list / dict of them
        A dict maps labels to curves.
    ax : matplotlib Axes, optional
    scale : {"semilogy", "loglog", "linear"}
        Exponential decay is a straight line on "semilogy", a power law on "loglog".
    labels : sequence of str, optional
        Legend labels (the dict keys when ``curves`` is a dict).
    fit : bool
        Overlay :func:`~dynmem.memory.fit_decay`'s model as a dashed line.
    title : str, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    check_choice("scale", scale, _SCALES)
    if isinstance(curves, Mapping):
        labels = list(curves.keys()) if labels is None else labels
        items = list(curves.values())
    elif isinstance(curves, (MemoryResult, tuple)):
        items = [curves]
    else:
        items = list(curves)
    if labels is not None and len(labels) != len(items):
        raise ValueError(f"`labels` must have one entry per curve ({len(items)}); got {len(labels)}.")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    for i, item in enumerate(items):
        t, M = _curve(item)
        keep = (M > 0) & np.isfinite(M)
        if scale == "loglog":
            keep &= t > 0
        label = labels[i] if labels is not None else None
        (line,) = ax.plot(t[keep], M[keep], label=label, lw=1.5)
        if fit and keep.sum() >= 4:
            f = fit_decay(t[keep], M[keep])
            if f.kind in ("exponential", "polynomial", "non-decaying"):
                tw = t[keep]
                tw = tw[(tw >= f.window[0]) & (tw <= f.window[1])]
                ax.plot(tw, decay_curve(f, tw), "--", color=line.get_color(), lw=1, label=_label_for(f))
    if scale == "semilogy":
        ax.set_yscale("log")
    elif scale == "loglog":
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("t")
    ax.set_ylabel("M(t)")
    if title:
        ax.set_title(title)
    if labels is not None or fit:
        ax.legend(fontsize=7)
    return ax


def plot_memory_panels(curves, *, axes=None, labels=None, fit: bool = True):
    """The same curves on semilog and log-log axes side by side.

    Returns
    -------
    ndarray of two Axes
    """
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes = np.asarray(axes).ravel()
    if axes.size != 2:
        raise ValueError(f"`axes` must hold two Axes; got {axes.size}.")
    plot_memory(curves, ax=axes[0], scale="semilogy", labels=labels, fit=fit, title="semilog: exponential = line")
    plot_memory(curves, ax=axes[1], scale="loglog", labels=labels, fit=fit, title="log-log: power law = line")
    return axes


# ----------------------------------------------------------------------------- kernel-limit width sweeps


def plot_error_vs_width(result: "ConvergenceResult", ax=None):
    """Log-log ``sup_t ||h^N_t - h_t||`` and the NTK error against ``N``, with fits and an ``N^-1/2`` guide.

    ``result`` is a :class:`~dynmem.kernel.convergence.ConvergenceResult`.

    Returns the Axes.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4))
    N = np.asarray(result.N_values, float)
    for b, s in enumerate(result.seeds):
        ax.loglog(N, result.errors[:, b], "o", color="C0", alpha=0.5, ms=4, label="sup_t ||h^N - h|| (seeds)" if b == 0 else None)
        ax.loglog(N, result.ntk_errors[:, b], "s", color="C1", alpha=0.5, ms=4, label="||K_N(0) - A|| / ||A||" if b == 0 else None)
    for fit, color in ((result.slope, "C0"), (result.ntk_slope, "C1")):
        if np.isfinite(fit.slope):
            ax.loglog(N, np.exp(fit.intercept) * N ** fit.slope, "-", color=color,
                      label=f"slope {fit.slope:.2f} [{fit.ci_low:.2f}, {fit.ci_high:.2f}]")
    ref = np.nanmedian(result.errors[0]) * (N / N[0]) ** -0.5
    ax.loglog(N, ref, "k:", label="N^-1/2")
    ax.set(xlabel="width N", ylabel="error", title=f"[LSS] kernel limit, beta = {result.settings.get('beta')}")
    ax.legend(fontsize=7)
    return ax


def plot_trajectories(result: "ConvergenceResult", ax=None, *, n_show: int = 4, width_index: int = -1, seed_index: int = 0):
    """:math:`h^N_t(z)` (markers) against the limit :math:`h_t(z)` (lines) on the heaviest histories.

    Returns the Axes.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4))
    w = result.histories.weights
    show = np.argsort(-w)[:n_show]
    for k, j in enumerate(show):
        color = f"C{k}"
        ax.plot(result.times, result.h_limit[:, j], "-", color=color, label=f"h_t(z_{j})  (E[Y|z] = {result.target_values[j]:.2f})")
        ax.plot(result.times, result.h_network[width_index, seed_index, :, j], "o", color=color, ms=3)
    ax.set(xlabel="t = k / N", ylabel="output on history",
           title=f"N = {int(result.N_values[width_index])}: network (dots) vs limit ODE (lines)")
    ax.legend(fontsize=7)
    return ax
