"""Ablation between the paper's and the code's protocols: which ingredient carries the effect?

Start from a *base* protocol (``"paper"`` by default) and switch one
ingredient at a time to the *other* protocol's value, keeping everything
else; each variant is a Fig. 2 study (:mod:`dynmem.experiments.study`) on the
polynomial and exponential targets at a reduced size.  The ingredients:

``perturbation``
    the perturbation study: norm (block-spectral vs entrywise max-abs on
    every tensor), beta grid, repeats, common vs independent directions;
``parameterisation``
    the recurrent matrix's form (free ``W`` vs ``P^T diag(relu w) P``), the
    identity swap at evaluation, the initialisation and the output bias;
``dt``
    the discretisation step of the Euler recurrence (same number of steps);
``training``
    the training recipe: optimiser, schedule, clipping, time weights,
    margin penalty, batch size and stopping rule (epoch cap of the ablation kept);
``budget``
    the training budget: ``BUDGET_FACTOR`` times the ablation's epoch cap;
``target``
    the target family's exponent and scale.

The findings of each variant are those of :func:`dynmem.experiments.study.findings`
for the polynomial target; an ingredient *carries the effect* when switching
it alone changes whether the theorem's mechanism (margin -> 0 with the error)
or its visible consequence (a shrinking blow-up beta) appears.
"""

from __future__ import annotations

import math
import time

from . import study
from .protocols import protocol as get_protocol
from .record import Experiment

TITLE = "Ablation: paper vs code protocol, one ingredient at a time (Fig. 2 study)"
CLAIM = ("Not a claim of the paper: which of the protocols' differences (perturbation norm, parameterisation and "
         "identity swap, dt, training recipe, training budget, target exponent) make the curse of memory appear "
         "or disappear in trained RNNs.")
PROTOCOLS = ("paper", "code")
INGREDIENTS = ("perturbation", "parameterisation", "dt", "training", "budget", "target")
BUDGET_FACTOR = 4

#: The reduced sizes (recorded in every result): widths, seeds, data fraction, epoch cap.
SIZES = {
    "quick": {"widths": [4, 8], "seeds": [0, 1], "data_scale": {"paper": 0.01, "code": 0.001}, "max_epochs": 6,
              "perturbation_repeats": 2},
    "full": {"widths": [8, 16, 32], "seeds": [0, 1, 2], "data_scale": {"paper": 0.25, "code": 0.025},
             "max_epochs": 100, "perturbation_repeats": 3},
}


def _switch(ingredient: str, other: dict, max_epochs: int) -> dict:
    """Protocol overrides that switch ``ingredient`` to ``other``'s value (applied in order)."""
    if ingredient == "perturbation":
        return {"perturbation": other["perturbation"]}
    if ingredient == "parameterisation":
        return {"parameterisation": other["parameterisation"], "identity_swap": other["identity_swap"],
                "init": other["init"], "model__output_bias": other["model"]["output_bias"]}
    if ingredient == "dt":
        return {"model__dt": other["model"]["dt"]}
    if ingredient == "training":
        return {"training": other["training"]}
    if ingredient == "target":
        return {"targets": other["targets"]}
    if ingredient == "budget":
        return {"training__max_epochs": BUDGET_FACTOR * int(max_epochs)}
    raise ValueError(f"`ingredient` must be one of {list(INGREDIENTS)}; got {ingredient!r}.")


def config(size: str = "quick", protocol: str | None = None, *, ingredients=INGREDIENTS, workdir=None) -> dict:
    """The ablation's config: the base study and one study per switched ingredient.

    Parameters
    ----------
    size : {"quick", "full"}
        Reduced sizes of :data:`SIZES` (the ablation never runs a protocol's
        whole budget: it is 7 studies).
    protocol : {"paper", "code"}
        The base protocol; the other one supplies the switched values.
    ingredients : sequence of str
        A subset of :data:`INGREDIENTS`.
    """
    base = protocol or PROTOCOLS[0]
    if base not in PROTOCOLS:
        raise ValueError(f"`protocol` must be one of {list(PROTOCOLS)}; got {base!r}.")
    if size not in SIZES:
        raise ValueError(f"`size` must be one of {list(SIZES)}; got {size!r}.")
    bad = [i for i in ingredients if i not in INGREDIENTS]
    if bad:
        raise ValueError(f"`ingredients` must be among {list(INGREDIENTS)}; got {bad}.")
    other_name = "code" if base == "paper" else "paper"
    other = get_protocol(other_name)
    sz = SIZES[size]
    reduce = {"training__snapshots": [e for e in (1, 2, 5, 10, 20, 50, 100, 200, 500, 800) if e <= 4 * sz["max_epochs"]],
              "training__max_epochs": int(sz["max_epochs"]), "perturbation__repeats": int(sz["perturbation_repeats"])}
    variants = []
    for name in ("base",) + tuple(ingredients):
        sw = {} if name == "base" else _switch(name, other, sz["max_epochs"])
        # the switch first, then the reductions (except the budget switch's own epoch cap)
        ov = dict(sw)
        for k, v in reduce.items():
            if k == "training__max_epochs" and name == "budget":
                continue
            ov[k] = v
        if name == "training" and size == "quick":
            ov["training__batch_size"] = 32
        if base == "paper" and size == "quick":
            ov.setdefault("training__batch_size", 32)
        cfg = study.study_config("fig2", base, "full", widths=list(sz["widths"]), seeds=list(sz["seeds"]),
                                 data_scale=float(sz["data_scale"][base]), overrides=ov, workdir=workdir)
        cfg["figure"] = f"ablation-{name}"
        cfg["size"] = size
        variants.append({"name": name, "switched_to": None if name == "base" else other_name, "study": cfg})
    return {"experiment": "ablation", "protocol": base, "other": other_name, "size": size, "sizes": sz,
            "variants": variants}


def _summary(r: dict) -> dict:
    f = r["findings"].get("pol", {})
    e = r["findings"].get("exp", {})
    return {
        "pol_margin_vs_error_slope": f.get("margin_vs_error_slope"), "pol_margin_vs_error_ci": f.get("margin_vs_error_ci"),
        "pol_mechanism": bool(f.get("margin_to_zero_with_error")),
        "exp_margin_bounded": bool(e.get("margin_bounded", True)),
        "pol_blowup_slope": f.get("blowup_slope_median"), "pol_crossing_slope": f.get("crossing_slope_median"),
        "pol_error0_slope": f.get("error0_slope_median"), "pol_margin_slope": f.get("margin_slope_median"),
        "pol_boundary_shrinks": bool(f.get("blowup_shrinks_with_m")) or bool(
            f.get("crossing_slope_median") is not None and math.isfinite(f.get("crossing_slope_median"))
            and f.get("crossing_slope_median") < -study.SLOPE_TOL),
        "pol_error0_median": {str(m): r["targets"]["pol"]["per_width"][str(m)]["error0_median"] for m in r["widths"]},
        "pol_margin_median": {str(m): r["targets"]["pol"]["per_width"][str(m)]["margin_median"] for m in r["widths"]},
        "budget": r["budget"],
    }


def run(config: dict, *, executor=None, progress: bool = False) -> dict:
    """Every variant of the ablation ladder (:func:`dynmem.experiments.study.run_study` each), and the comparison."""
    start = time.perf_counter()
    rows = []
    for v in config["variants"]:
        r = study.run_study(v["study"], executor=executor, progress=progress)
        rows.append({"name": v["name"], "switched_to": v["switched_to"], "overrides": v["study"]["overrides"],
                     "summary": _summary(r), "protocol": r["protocol"], "seconds": r["seconds"],
                     "findings": r["findings"]})
    base = rows[0]["summary"]
    for row in rows[1:]:
        s = row["summary"]
        row["changes_mechanism"] = s["pol_mechanism"] != base["pol_mechanism"]
        row["changes_boundary"] = s["pol_boundary_shrinks"] != base["pol_boundary_shrinks"]
    return {"experiment": "ablation", "protocol_name": config["protocol"], "other": config["other"],
            "size": config["size"], "config": config, "widths": config["variants"][0]["study"]["widths"],
            "variants": rows, "seconds": time.perf_counter() - start}


def verdict(result: dict) -> dict:
    """Not a reproduction: ``verdict`` names the ingredients that carry the effect (or none)."""
    base = result["variants"][0]["summary"]
    carry = [r["name"] for r in result["variants"][1:] if r.get("changes_mechanism") or r.get("changes_boundary")]
    shown = base["pol_mechanism"] or base["pol_boundary_shrinks"]
    why = (f"base {result['protocol_name']}: mechanism {'shown' if base['pol_mechanism'] else 'not shown'} "
           f"(margin-vs-error slope {_fmt(base['pol_margin_vs_error_slope'])}), boundary "
           f"{'shrinks' if base['pol_boundary_shrinks'] else 'does not shrink'} (blow-up slope "
           f"{_fmt(base['pol_blowup_slope'])}); "
           + (f"switching {', '.join(carry)} to {result['other']}'s value changes that" if carry
              else f"no single switch to {result['other']}'s value changes that"))
    return {"verdict": "carried by: " + ", ".join(carry) if carry else ("none carries it" if not shown else "robust"),
            "why": why, "numbers": {r["name"]: {k: r["summary"][k] for k in
                                               ("pol_margin_vs_error_slope", "pol_blowup_slope", "pol_crossing_slope",
                                                "pol_error0_slope")} for r in result["variants"]}}


def _fmt(x) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    return f"{x:.3g}" if math.isfinite(x) else str(x)


def plot(result: dict, path: str) -> None:
    """Per variant: the pol target's median E_m(0) and margin against m, and the margin-vs-error slope with its CI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import NullFormatter

    from ..io import atomic_savefig
    from ..plotting import finish_figure

    fig, axes = plt.subplots(1, 3, figsize=(15, 5.2))
    widths = result["widths"]
    markers = "osD^v<>px*"
    for i, row in enumerate(result["variants"]):
        s = row["summary"]
        # the base is drawn wide, grey and underneath: a variant that trains the same nets (the perturbation
        # norm changes only the perturbation study) lies on top of it instead of hiding it
        style = dict(color="0.25", lw=5, alpha=0.35, zorder=1) if row["name"] == "base" else \
            dict(marker=markers[i % len(markers)], ms=5, lw=1.2, zorder=2)
        axes[0].loglog(widths, [s["pol_error0_median"][str(m)] for m in widths], label=row["name"], **style)
        mg = np.asarray([s["pol_margin_median"][str(m)] for m in widths], float)
        axes[1].loglog(widths, np.where(mg > 0, mg, np.nan), label=row["name"], **style)
    axes[0].set(xlabel="width $m$", ylabel=r"$E_m(0)$ (pol target, median)", title="achieved error")
    axes[1].set(xlabel="width $m$", ylabel=r"$-\alpha(W_m)$ (pol target, median)", title="spectral margin")
    names = [r["name"] for r in result["variants"]]
    sl = np.asarray([float(r["summary"]["pol_margin_vs_error_slope"]) for r in result["variants"]], float)
    ci = np.asarray([[float(v) for v in r["summary"]["pol_margin_vs_error_ci"]] for r in result["variants"]], float)
    y = np.arange(len(names))
    axes[2].errorbar(sl, y, xerr=np.abs(np.vstack([sl - ci[:, 0], ci[:, 1] - sl])), fmt="o",
                     label="slope, 95% CI over seeds")
    axes[2].axvline(0.0, color="k", lw=0.7)
    axes[2].set_yticks(y, names)
    axes[2].set(xlabel=r"slope of $\log(-\alpha(W_m))$ against $\log E_m(0)$",
                title="mechanism: a slope > 0 means the margin\nfalls to 0 with the error")
    axes[2].legend(fontsize=7, loc="lower right")
    axes[0].legend(fontsize=7, title="variant (switched ingredient)", title_fontsize=7)
    for ax in axes[:2]:
        ax.set_xticks(widths, [str(m) for m in widths])
    finish_figure(fig, result, extra=f"ablation of one ingredient at a time, base {result['protocol_name']}, "
                                     f"switched to {result['other']}")
    for ax in axes[:2]:
        ax.set_xticks(widths, [str(m) for m in widths])
        ax.xaxis.set_minor_formatter(NullFormatter())
    atomic_savefig(fig, path, dpi=100)
    plt.close(fig)

EXPERIMENT = Experiment(name="ablation", title=TITLE, claim=CLAIM, protocols=PROTOCOLS, config=config, run=run,
                        plot=plot, verdict=verdict)
