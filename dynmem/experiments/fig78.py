"""[WLL] Figs. 7/8: activation x parameterisation grid on the polynomial target.

For each activation (relu, hardtanh, tanh) the study of
:mod:`dynmem.experiments.study` runs twice: without reparameterisation
(``"paper"``: free ``W``; ``"code"``: the code's ``"rnn"``,
``P^T diag(relu w) P`` with the identity swap) and with softplus
(``"paper"``: ``-diag(softplus w)``; ``"code"``: ``"softplusrnn"``).  The
claim: relu without reparameterisation is unstable (perturbations make ``W``
unstable and the boundary shrinks), softplus is stable for every activation.
"""

from __future__ import annotations

import math
import time

import numpy as np

from . import study
from .record import Experiment

TITLE = "[WLL] Figs. 7/8: activation x parameterisation (polynomial target)"
CLAIM = ("ReLU RNNs without reparameterisation are unstable (their stability boundary shrinks); with W = "
         "-softplus(w) the relu, hardtanh and tanh RNNs are stable: no unstable perturbation, error falling in m.")
PROTOCOLS = ("paper", "code")
ACTIVATIONS = ("relu", "hardtanh", "tanh")
PARAMETERISATIONS = ("fig2", "fig8b")  # plain, softplus (the parameterisation of fig8b)


def config(size: str = "quick", protocol: str | None = None, **changes) -> dict:
    """The grid's config: one study config per (activation, parameterisation), targets = pol only.

    ``"full"`` keeps the protocol's recipe but caps training at
    ``max_epochs`` (default 100 here: the grid is 6 studies; the cap is
    recorded in every study's protocol).
    """
    protocol = protocol or PROTOCOLS[0]
    max_epochs = changes.pop("max_epochs", 100 if size == "full" else None)
    workdir = changes.pop("workdir", None)
    cells = []
    for act in ACTIVATIONS:
        for par in PARAMETERISATIONS:
            extra = dict(changes)
            if max_epochs is not None:
                extra["overrides"] = {**extra.get("overrides", {}), "training__max_epochs": int(max_epochs)}
            c = study.study_config(par, protocol, size, targets=["pol"], activation=act, workdir=workdir, **extra)
            c["figure"] = "fig78"
            c["parameterisation"] = par
            cells.append(c)
    return {"experiment": "fig78", "protocol": protocol, "size": size, "cells": cells}


def run(config: dict, *, executor=None, progress: bool = False) -> dict:
    """Every activation x parameterisation study of the grid (:func:`dynmem.experiments.study.run_study`)."""
    start = time.perf_counter()
    cells = []
    for c in config["cells"]:
        r = study.run_study(c, executor=executor, progress=progress)
        pol = r["targets"]["pol"]
        n_unstable = int(sum(sum(u[1:]) for m in r["widths"] for u in pol["per_width"][str(m)]["unstable"]))
        reps = int(r["protocol"]["perturbation"]["repeats"])
        n_checked = int(sum((len(u) - 1) * reps for m in r["widths"] for u in pol["per_width"][str(m)]["unstable"]))
        cells.append({
            "activation": c["activation"], "parameterisation": "plain" if c["parameterisation"] == "fig2" else "softplus",
            "findings": r["findings"]["pol"], "n_unstable_betas": n_unstable, "n_betas_checked": n_checked,
            "error0_median": {str(m): pol["per_width"][str(m)]["error0_median"] for m in r["widths"]},
            "blowup_median": {str(m): pol["per_width"][str(m)]["blowup_median"] for m in r["widths"]},
            "first_unstable_median": {str(m): pol["per_width"][str(m)]["first_unstable_median"] for m in r["widths"]},
            "ball_sup_median": {str(m): [float(v) for v in np.median(np.asarray(pol["per_width"][str(m)]["ball_sup"], float), axis=0)]
                                for m in r["widths"]},
            "betas": pol["betas"], "budget": r["budget"], "protocol": r["protocol"],
        })
    widths = config["cells"][0]["widths"]
    return {"experiment": "fig78", "protocol_name": config["protocol"], "size": config["size"], "config": config,
            "widths": widths, "cells": cells, "seconds": time.perf_counter() - start}


def verdict(result: dict) -> dict:
    """Reproduced when relu/plain shows unstable perturbations and a shrinking boundary and every softplus cell none."""
    cell = {(c["activation"], c["parameterisation"]): c for c in result["cells"]}
    relu = cell[("relu", "plain")]
    relu_unstable = relu["n_unstable_betas"] > 0
    relu_shrinks = bool(relu["findings"].get("blowup_shrinks_with_m"))
    soft = [cell[(a, "softplus")] for a in ACTIVATIONS]
    soft_stable = all(c["n_unstable_betas"] == 0 for c in soft)
    soft_falls = [bool(c["findings"].get("error_falls_with_m")) for c in soft]
    checks = [relu_unstable, relu_shrinks, soft_stable, all(soft_falls)]
    v = "reproduced" if all(checks) else ("partly" if any(checks) else "not reproduced")
    why = (f"relu plain: unstable perturbations at {relu['n_unstable_betas']} of {relu['n_betas_checked']} "
           f"perturbed models, blow-up slope {relu['findings'].get('blowup_slope_median', math.nan):.3g}; "
           f"softplus: unstable {sum(c['n_unstable_betas'] for c in soft)}, error falls with m for "
           f"{sum(soft_falls)} of {len(soft)} activations")
    return {"verdict": v, "why": why, "numbers": {"relu_plain_unstable": relu["n_unstable_betas"],
                                                   "relu_plain_blowup_slope": relu["findings"].get("blowup_slope_median"),
                                                   "softplus_unstable": sum(c["n_unstable_betas"] for c in soft),
                                                   "softplus_error_falls": soft_falls}}


def plot(result: dict, path: str) -> None:
    """One panel per activation and parameterisation: the students' perturbation curves per width."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import atomic_savefig
    from ..plotting import finish_figure

    fig, axes = plt.subplots(2, 3, figsize=(14, 7.5), squeeze=False)
    widths = result["widths"]
    colors = plt.cm.viridis(np.linspace(0.0, 0.9, len(widths)))
    for c in result["cells"]:
        i = 0 if c["parameterisation"] == "plain" else 1
        j = ACTIVATIONS.index(c["activation"])
        ax = axes[i, j]
        b = np.asarray(c["betas"], float)
        pos = b > 0
        for col, m in zip(colors, widths):
            e = np.asarray(c["ball_sup_median"][str(m)], float)
            e = np.where(np.isfinite(e) & (e > 0), e, np.nan)
            ax.plot(b[pos], e[pos], color=col, marker="o", ms=2.5, label=f"m = {m}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{c['activation']}, {c['parameterisation']}: {c['n_unstable_betas']} unstable perturbed models",
                     fontsize=10)
        ax.set_xlabel(r"perturbation size $\beta$")
        ax.legend(fontsize=7, title="width", title_fontsize=7)
    axes[0, 0].set_ylabel(r"$E_m(\beta)$ (median)")
    axes[1, 0].set_ylabel(r"$E_m(\beta)$ (median)")
    finish_figure(fig, result, extra=TITLE)
    atomic_savefig(fig, path, dpi=100)
    plt.close(fig)

EXPERIMENT = Experiment(name="fig78", title=TITLE, claim=CLAIM, protocols=PROTOCOLS, config=config, run=run,
                        plot=plot, verdict=verdict)
