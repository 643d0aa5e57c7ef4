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

__all__ = ["plot_memory", "plot_memory_panels", "decay_curve", "plot_error_vs_width", "plot_trajectories",
           "plot_fixed_points", "principal_components", "figure_heading", "readable_log_ticks", "finish_figure",
           "layout_problems"]

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
        return f"fit: $e^{{-{fit.rate:.3g}\\,t}}$"
    if fit.kind == "polynomial":
        return f"fit: $(t + {fit.shift:.2g})^{{-{fit.exponent:.3g}}}$"
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
    ax.set_xlabel("$t$")
    ax.set_ylabel("memory $M(t)$")
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
        ax.loglog(N, result.errors[:, b], "o", color="C0", alpha=0.5, ms=4, label=r"$\sup_t \|h^N_t - h_t\|$ (seeds)" if b == 0 else None)
        ax.loglog(N, result.ntk_errors[:, b], "s", color="C1", alpha=0.5, ms=4, label=r"$\|K_N(0) - A\| \,/\, \|A\|$" if b == 0 else None)
    for fit, color in ((result.slope, "C0"), (result.ntk_slope, "C1")):
        if np.isfinite(fit.slope):
            ax.loglog(N, np.exp(fit.intercept) * N ** fit.slope, "-", color=color,
                      label=f"slope {fit.slope:.2f}, 95% CI [{fit.ci_low:.2f}, {fit.ci_high:.2f}]")
    ref = np.nanmedian(result.errors[0]) * (N / N[0]) ** -0.5
    ax.loglog(N, ref, "k:", label=r"$N^{-1/2}$")
    ax.set(xlabel="width $N$", ylabel="error", title=rf"[LSS] kernel limit, $\beta = {result.settings.get('beta')}$")
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
        ax.plot(result.times, result.h_limit[:, j], "-", color=color, label=f"$h_t(z_{{{j}}})$, $E[Y|z] = {result.target_values[j]:.2f}$")
        ax.plot(result.times, result.h_network[width_index, seed_index, :, j], "o", color=color, ms=3)
    ax.set(xlabel="$t = k / N$", ylabel="output on history",
           title=f"N = {int(result.N_values[width_index])}: network (dots) vs limit ODE (lines)")
    ax.legend(fontsize=7)
    return ax


# --------------------------------------------------------------------------
# fixed points on the leading principal components of trajectories ([SB])


def principal_components(states, n_components: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The leading principal axes of a cloud of states.

    Parameters
    ----------
    states : array_like, shape (N, n) or (k, T, n)
        Visited states (trajectories are flattened over their time axis).
    n_components : int

    Returns
    -------
    mean : ndarray, shape (n,)
    axes : ndarray, shape (n_components, n)
        Orthonormal rows: the right singular vectors of the centred states,
        by decreasing singular value (the projection is ``(h - mean) @ axes.T``).
    explained : ndarray, shape (n_components,)
        The fraction of the total variance along each axis.
    """
    from ._validation import check_int

    X = as_float_array("states", states, ndim=(2, 3))
    X = X.reshape(-1, X.shape[-1])
    n_components = check_int("n_components", n_components, minimum=1, maximum=X.shape[1])
    if X.shape[0] < 2:
        raise ValueError(f"`states` must hold at least 2 states for principal components; got shape {X.shape}.")
    mean = X.mean(axis=0)
    _, sv, Vt = np.linalg.svd(X - mean, full_matrices=False)
    total = float(np.sum(sv ** 2))
    explained = sv[:n_components] ** 2 / total if total > 0 else np.zeros(n_components)
    axes = np.zeros((n_components, X.shape[1]))
    axes[:min(n_components, Vt.shape[0])] = Vt[:n_components]
    return mean, axes, explained


_FP_STYLE = {"stable": dict(marker="o", color="C0", ms=8), "saddle": dict(marker="X", color="C3", ms=8),
             "unstable": dict(marker="^", color="C1", ms=8), "marginal": dict(marker="s", color="C2", ms=7)}


def plot_fixed_points(fixed_points, states, *, ax=None, max_trajectories: int = 30, title: str | None = None):
    """Fixed points (by kind) and slow points on the two leading principal components of trajectories ([SB] Fig. 2).

    Parameters
    ----------
    fixed_points : dynmem.fixed_points.FixedPoints
        From :func:`~dynmem.fixed_points.find_fixed_points`.
    states : array_like, shape (k, T, n) or (N, n)
        States of the model on real inputs (the same flat state as the fixed
        points); trajectories (k, T, n) are drawn as thin lines, a cloud (N, n)
        as dots.  Their principal axes (:func:`principal_components`) define the plane.
    ax : matplotlib Axes, optional
    max_trajectories : int
        At most this many trajectories are drawn (all are used for the axes).
    title : str, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    from ._validation import check_int

    X = as_float_array("states", states, ndim=(2, 3))
    n = fixed_points.points.shape[1]
    if X.shape[-1] != n:
        raise ValueError(f"`states` must have the fixed points' state size {n} as last axis; got shape {X.shape}.")
    max_trajectories = check_int("max_trajectories", max_trajectories, minimum=0)
    mean, axes, explained = principal_components(X, min(2, n))
    if axes.shape[0] == 1:
        axes = np.vstack([axes, np.zeros((1, n))])
        explained = np.append(explained, 0.0)

    def proj(P):
        return (np.asarray(P, dtype=float).reshape(-1, n) - mean) @ axes.T

    if ax is None:
        _, ax = plt.subplots(figsize=(5.2, 4.4))
    if X.ndim == 3:
        for tr in X[:max_trajectories]:
            p = proj(tr)
            ax.plot(p[:, 0], p[:, 1], "-", color="0.75", lw=0.7, zorder=1)
        ax.plot([], [], "-", color="0.75", lw=0.7, label="trajectories")
    else:
        p = proj(X)
        ax.plot(p[:, 0], p[:, 1], ".", color="0.75", ms=2, zorder=1, label="visited states")
    kinds = np.array(fixed_points.kinds, dtype=object)
    for kind, style in _FP_STYLE.items():
        sel = kinds == kind
        if np.any(sel):
            p = proj(fixed_points.points[sel])
            ax.plot(p[:, 0], p[:, 1], ls="none", mec="k", zorder=3, label=f"{kind} ({int(sel.sum())})", **style)
    if fixed_points.slow_points.shape[0]:
        p = proj(fixed_points.slow_points)
        ax.plot(p[:, 0], p[:, 1], "d", color="0.4", ms=5, ls="none", zorder=2,
                label=f"slow points ({p.shape[0]})")
    ax.set(xlabel=f"PC 1 ({100 * explained[0]:.0f}% of variance)", ylabel=f"PC 2 ({100 * explained[1]:.0f}% of variance)",
           title=title if title is not None else "fixed points on the leading principal components")
    ax.legend(fontsize=7)
    return ax


# --------------------------------------------------------------------------
# figure layout shared by the experiment figures


def figure_heading(result: Mapping, extra: str = "") -> str:
    """The suptitle of an experiment figure: experiment, protocol and size ("quick: not evidence" for quick).

    Reads ``result["reproduce"]`` when the figure comes from ``dynmem
    reproduce``, else the result's own ``experiment``, ``protocol_name`` and
    ``size``.
    """
    rep = result.get("reproduce") or {}
    name = rep.get("experiment") or result.get("experiment") or "experiment"
    proto = rep.get("protocol") or result.get("protocol_name") or (result.get("config") or {}).get("protocol") or "-"
    size = rep.get("size") or result.get("size") or (result.get("config") or {}).get("size") or "-"
    text = f"{name}, protocol {proto}, {size} size"
    if size == "quick":
        text += " (quick: not evidence)"
    return f"{text}: {extra}" if extra else text


def _plain_number(v, _pos=None) -> str:
    if v == 0 or not np.isfinite(v):
        return ""
    exp = np.floor(np.log10(abs(v)))
    if -3 <= exp <= 4:
        return f"{v:g}"
    mant = v / 10 ** exp
    return f"$10^{{{int(exp)}}}$" if abs(mant - 1) < 1e-9 else f"${mant:g}\\times10^{{{int(exp)}}}$"


def readable_log_ticks(ax, *, max_decades: float = 1.5) -> None:
    """On log axes spanning under ``max_decades`` decades: a few plain-number ticks, no colliding minor labels.

    matplotlib labels such an axis with every minor tick in ``a x 10^b`` form
    ("2x10^0 3x10^0 4x10^0"), which collides; here the labels are plain
    numbers (``4``, ``6``, ``8``) at 1-2-5 steps (or the axis's own data
    points when it holds few), and the other minor ticks stay unlabelled.
    """
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    for axis, scale, lim in ((ax.xaxis, ax.get_xscale(), ax.get_xlim()), (ax.yaxis, ax.get_yscale(), ax.get_ylim())):
        if scale != "log" or not (lim[0] > 0 and lim[1] > 0):
            continue
        lo, hi = sorted(lim)
        if np.log10(hi / lo) > max_decades:
            axis.set_minor_formatter(NullFormatter())
            continue
        ticks = [v for v in LogLocator(subs=(1.0, 2.0, 5.0)).tick_values(lo, hi) if lo <= v <= hi]
        if len(ticks) < 2:
            ticks = [v for v in LogLocator(subs=(1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)).tick_values(lo, hi)
                     if lo <= v <= hi]
        if len(ticks) < 2:  # under a factor 2 or so: evenly spaced round numbers
            ticks = [v for v in MaxNLocator(nbins=4).tick_values(lo, hi) if lo <= v <= hi and v > 0]
        if len(ticks) > 6:
            ticks = ticks[:: int(np.ceil(len(ticks) / 6))]
        axis.set_major_locator(FixedLocator(ticks))
        axis.set_major_formatter(FuncFormatter(_plain_number))
        axis.set_minor_formatter(NullFormatter())


def _fit_titles(fig) -> None:
    """Wrap every axes title to its axes' width (so a long title neither runs into its neighbour nor off the canvas)."""
    import textwrap

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        title = ax.title
        text = title.get_text()
        if not text:
            continue
        width = ax.get_window_extent(renderer).width
        for _ in range(4):
            ext = title.get_window_extent(renderer)
            if ext.width <= width * 1.02:
                break
            lines = text.split("\n")
            longest = max(len(line) for line in lines)
            chars = max(12, int(longest * width / ext.width) - 1)
            text = "\n".join(textwrap.fill(line, chars, break_on_hyphens=False) for line in lines)
            title.set_text(text)


def finish_figure(fig, result: Mapping | None = None, *, heading: str | None = None, extra: str = "") -> None:
    """Lay out an experiment figure: its heading (:func:`figure_heading`), titles wrapped to their axes,
    plain tick labels on short log axes, and a constrained layout that keeps every text on the canvas."""
    if heading is None and result is not None:
        heading = figure_heading(result, extra)
    old = fig.get_suptitle()
    if heading:
        fig.suptitle(heading if not old else f"{heading}\n{old}", fontsize=11)
    for ax in fig.axes:
        readable_log_ticks(ax)
    fig.set_layout_engine("constrained")
    _fit_titles(fig)
    fig.canvas.draw()


def layout_problems(fig) -> list:
    """Texts of ``fig`` that leave the canvas, and axes titles that overlap one another (after a draw).

    Returns a list of strings, empty when the layout reads.
    """
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    W, H = fig.bbox.width, fig.bbox.height
    problems = []
    texts = list(fig.texts)
    for ax in fig.axes:
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label]
        texts += list(ax.texts)
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            span = (hi - lo) * 1e-9
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():  # only the ticks drawn: inside the view
                if lo - span <= tick.get_loc() <= hi + span:
                    texts += [lab for lab in (tick.label1, tick.label2) if lab.get_visible()]
        leg = ax.get_legend()
        if leg is not None:
            texts += list(leg.get_texts())
    texts = [t for t in texts if t.get_visible() and t.get_text().strip()]
    for t in texts:
        try:
            e = t.get_window_extent(renderer)
        except Exception:  # an artist without an extent cannot leave the canvas
            continue
        if e.width == 0 and e.height == 0:
            continue
        if e.x0 < -1 or e.y0 < -1 or e.x1 > W + 1 or e.y1 > H + 1:
            problems.append(f"text {t.get_text()[:40]!r} leaves the canvas ({e.x0:.0f}, {e.y0:.0f}, {e.x1:.0f}, {e.y1:.0f}"
                            f" of {W:.0f} x {H:.0f})")
    titles = [(ax.title, ax.title.get_window_extent(renderer)) for ax in fig.axes if ax.title.get_text()]
    titles += [(t, t.get_window_extent(renderer)) for t in fig.texts if t.get_visible() and t.get_text().strip()]
    for i in range(len(titles)):
        for j in range(i + 1, len(titles)):
            a, b = titles[i][1], titles[j][1]
            if a.x0 < b.x1 - 1 and b.x0 < a.x1 - 1 and a.y0 < b.y1 - 1 and b.y0 < a.y1 - 1:
                problems.append(f"titles {titles[i][0].get_text()[:30]!r} and {titles[j][0].get_text()[:30]!r} overlap")
    return problems
