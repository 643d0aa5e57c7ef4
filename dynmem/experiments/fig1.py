"""[WLL] Fig. 1: linear RNNs fitted as exponential sums, perturbed (docs/theory.md section 4).

Two variants: *mechanism* (free exponents by variable projection, ``T = 1000``,
``m in {1, 2, 4, 6, 8}``: the approximants' spectral margin and the first-unstable /
blow-up betas, with a ``T = 100`` horizon check) and *paper-style* (non-negative least
squares on the grid ``mu_k = 0.5 k / m``, ``m in {2, 4, 6, 8, 14}``, ``t in {1..100}``).
Errors are sup-norms of the kernel error on the time grid; >= 100 block-spectral
perturbations per beta, several seeds.  Protocol: ``"dynmem"`` (the paper's fitting
code is not public).
"""

from __future__ import annotations

import sys
import time

import numpy as np

from ..decay import loglog_slope
from ..io import atomic_savefig
from . import verbose
from .record import Experiment

TITLE = "[WLL] Fig. 1: linear RNN approximants of exponential and power-law kernels"
CLAIM = ("Exponential target: curves share one crossing that does not drift with m. Power-law target: "
         "crossings move left as m grows (the limit curve jumps at 0).")
PROTOCOLS = ("dynmem",)
PAPER_BETAS = 5e-4 * 2.0 ** np.arange(0, 21)  # the paper-style curves' beta grid (21 doublings from 5e-4)


def config(size: str = "quick", protocol: str | None = None, **changes) -> dict:
    """Fig. 1's settings: the ``"dynmem"`` protocol, ``size`` ``"quick"`` (13 betas, one seed for the paper-style
    fits) or ``"full"`` (21 betas, every seed), and ``seeds`` (default 0, 1, 2), the only setting ``changes`` may set."""
    if (protocol or "dynmem") != "dynmem":
        raise ValueError(f"fig1 runs the 'dynmem' protocol only; got {protocol!r}.")
    if size not in ("quick", "full"):
        raise ValueError(f"`size` must be 'quick' or 'full'; got {size!r}.")
    cfg = {"experiment": "fig1", "protocol": "dynmem", "size": size, "seeds": [0, 1, 2]}
    for k, v in changes.items():
        if k == "workdir":
            continue
        if k not in cfg:
            raise ValueError(f"unknown fig1 setting {k!r}; known: seeds.")
        cfg[k] = list(v)
    return cfg


def run(config: dict, *, executor=None, progress: bool = False) -> dict:
    """Fit, perturb and summarise both variants (:func:`run_fig1`); ``executor`` is not used (the run is serial)."""
    r = run_fig1(quick=config["size"] == "quick", seeds=tuple(config["seeds"]), progress=progress)
    r.update(protocol_name="dynmem", config=dict(config), size=config["size"])
    return r


def plot(result: dict, path: str) -> None:
    """The figure of :func:`plot_fig1`."""
    plot_fig1(result, path)


def verdict(result: dict) -> dict:
    """The mechanism: the power-law target's margin and blow-up beta shrink with m, the exponential target's do not."""
    s = result["summary"]
    shrink = s["pow_margin_slope"] < -0.3 and s["pow_blowup_slope"] < -0.3
    steady = s["exp_margin_max_rel_dev"] < 0.05
    v = "reproduced" if (shrink and steady) else ("partly" if (shrink or steady) else "not reproduced")
    why = (f"power law: margin slope {s['pow_margin_slope']:.3g}, blow-up slope {s['pow_blowup_slope']:.3g}; "
           f"exponential: margin within {100 * s['exp_margin_max_rel_dev']:.2g}% of -log 0.9 at every m; "
           f"paper-style exp E(0) falls {s['paper_exp_error0_fall_m2_to_m14']:.3g}x from m=2 to 14")
    return {"verdict": v, "why": why, "numbers": dict(s)}


def first_exceed(betas, e, level):
    from ..stability import first_exceed as fe

    return float(fe(np.asarray(betas, float), np.asarray(e, float), level))


def _fig1_study(name, target, t, widths, variant, betas, seeds, n_samples, progress, *, blowup_level=10.0):
    """Fit every width, perturb each fit with every seed; per-width numbers and per-seed curves."""
    from ..spectra import spectral_abscissa
    from ..stability import perturbation_curve
    from ..training import fit_exponential_sum

    rho = np.asarray(target.kernel(t), dtype=float).reshape(t.size, -1)[:, 0]
    rows = []
    for m in widths:
        t0 = time.perf_counter()
        fit = fit_exponential_sum(t, rho, m, variant=variant)
        model = fit.to_linear_rnn()
        margin = -spectral_abscissa(model.W)
        per_seed = []
        for seed in seeds:
            c = perturbation_curve(model, target, betas, n_samples=n_samples, error="sup", t_grid=t, rng=seed)
            unstable = np.flatnonzero(c.n_diverged > 0)
            per_seed.append(dict(
                seed=int(seed), max_error=c.max_error, mean_error=c.mean_error, median_error=c.median_error,
                n_diverged=c.n_diverged,
                first_unstable=float(betas[unstable[0]]) if unstable.size else float("inf"),
                blowup=first_exceed(betas, c.max_error, blowup_level),
                blowup_relative=first_exceed(betas, c.max_error, 10.0 * max(c.error0, 1e-300)),
            ))
        rows.append(dict(
            m=int(m), n_terms=int(fit.n_terms), error0=float(fit.sup_error), margin=float(margin),
            mu=fit.mu, a=fit.a, seeds=per_seed,
            first_unstable_median=float(np.median([s["first_unstable"] for s in per_seed])),
            blowup_median=float(np.median([s["blowup"] for s in per_seed])),
            seconds=time.perf_counter() - t0,
        ))
        if progress and verbose():
            print(f"  {name} m={m}: E(0)={fit.sup_error:.3g} margin={margin:.4g} "
                  f"first-unstable={rows[-1]['first_unstable_median']:.3g} blow-up={rows[-1]['blowup_median']:.3g}",
                  file=sys.stderr, flush=True)
    return rows


def _trends(rows, widths_for_slope):
    sel = [r for r in rows if r["m"] in widths_for_slope]
    ms = [r["m"] for r in sel]
    out = {"widths": ms}
    out["margin_slope"] = loglog_slope(ms, [r["margin"] for r in sel]).slope
    out["error0_slope"] = loglog_slope(ms, [r["error0"] for r in sel]).slope
    per_seed_fu, per_seed_bu = [], []
    n_seeds = len(sel[0]["seeds"]) if sel else 0
    for k in range(n_seeds):
        per_seed_fu.append(loglog_slope(ms, [r["seeds"][k]["first_unstable"] for r in sel]).slope)
        per_seed_bu.append(loglog_slope(ms, [r["seeds"][k]["blowup"] for r in sel]).slope)
    out["first_unstable_slope_per_seed"] = per_seed_fu
    out["blowup_slope_per_seed"] = per_seed_bu
    out["first_unstable_slope_median"] = float(np.nanmedian(per_seed_fu)) if per_seed_fu else float("nan")
    out["blowup_slope_median"] = float(np.nanmedian(per_seed_bu)) if per_seed_bu else float("nan")
    return out


def run_fig1(*, quick: bool = True, seeds=(0, 1, 2), progress: bool = False) -> dict:
    """[WLL] Fig. 1 in its two variants (see the module docstring); returns every number."""
    from ..targets import ExponentialKernel, PowerLawKernel

    n_samples = 100
    targets = {"exp": ExponentialKernel.discrete(0.9), "pow": PowerLawKernel(1.1)}
    betas = 5e-4 * 2.0 ** np.arange(0, 13 if quick else 21)
    widths = (1, 2, 4, 6, 8)
    out = dict(experiment="fig1", quick=quick, seeds=list(seeds), n_samples=n_samples, betas=betas,
               blowup_level=10.0)

    mech = {}
    for horizon in (1000, 100):
        t = np.arange(horizon + 1, dtype=float)
        for key, target in targets.items():
            if progress and verbose():
                print(f"fig1 mechanism: {key} target, T = {horizon}", file=sys.stderr, flush=True)
            rows = _fig1_study(f"{key}/T={horizon}", target, t, widths, "free", betas, seeds, n_samples, progress)
            mech[f"{key}_T{horizon}"] = dict(rows=rows, trends=_trends(rows, (2, 4, 6, 8)))
    out["mechanism"] = mech

    paper = {}
    t = np.arange(1, 101, dtype=float)
    pbetas = np.concatenate([[0.0], PAPER_BETAS])
    for key, target in targets.items():
        if progress and verbose():
            print(f"fig1 paper-style: {key} target", file=sys.stderr, flush=True)
        rows = _fig1_study(f"paper/{key}", target, t, (2, 4, 6, 8, 14), "grid", pbetas[1:], seeds[:1] if quick else seeds,
                           n_samples, progress)
        paper[key] = dict(rows=rows, trends=_trends(rows, (2, 4, 6, 8, 14)))
    out["paper_style"] = paper
    out["paper_betas"] = PAPER_BETAS.copy()

    # The acceptance numbers of the stability issue, computed (not asserted) here.
    e, p = mech["exp_T1000"], mech["pow_T1000"]
    e_rows, p_rows = {r["m"]: r for r in e["rows"]}, {r["m"]: r for r in p["rows"]}
    p_err = [p_rows[m]["error0"] for m in widths]
    exp_paper = {r["m"]: r for r in paper["exp"]["rows"]}
    flat = []
    for r in paper["exp"]["rows"]:
        mx = np.asarray(r["seeds"][0]["max_error"], float)
        sel = pbetas[1:] <= 4e-3
        flat.append(float(np.max(mx[sel]) / max(r["error0"], 1e-300)))
    out["summary"] = dict(
        exp_max_fit_error=max(r["error0"] for r in e["rows"]),
        exp_margin_max_rel_dev=max(abs(r["margin"] / 0.10536051565782628 - 1) for r in e["rows"]),
        exp_first_unstable_range=[min(r["first_unstable_median"] for r in e["rows"]),
                                  max(r["first_unstable_median"] for r in e["rows"])],
        pow_error0_strictly_decreasing=bool(np.all(np.diff(p_err) < 0)),
        pow_error0_ratio_m1_over_m8=p_rows[1]["error0"] / p_rows[8]["error0"],
        pow_margin_slope=p["trends"]["margin_slope"],
        pow_first_unstable_slope=p["trends"]["first_unstable_slope_median"],
        pow_blowup_slope=p["trends"]["blowup_slope_median"],
        pow_over_exp_blowup_at_m8=p_rows[8]["blowup_median"] / e_rows[8]["blowup_median"],
        horizon_check_T100_pow_over_exp_blowup_at_m8=(
            {r["m"]: r for r in mech["pow_T100"]["rows"]}[8]["blowup_median"]
            / {r["m"]: r for r in mech["exp_T100"]["rows"]}[8]["blowup_median"]),
        paper_exp_error0_fall_m2_to_m14=exp_paper[2]["error0"] / exp_paper[14]["error0"],
        paper_exp_max_growth_for_beta_le_4e_3=max(flat),
    )
    return out


def plot_fig1(result: dict, path: str) -> None:
    """Log-log E_m(beta) per width (first seed) for both targets, and margin / blow-up against m."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib.lines import Line2D
    from matplotlib.ticker import NullFormatter

    from ..plotting import finish_figure

    betas = np.asarray(result["betas"], float)
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    keys = (r"$0.9^t$", r"$(t+1)^{-1.1}$")
    marks = [Line2D([], [], color="k", marker="x", ls="none", ms=7, label="crossing of consecutive m"),
             Line2D([], [], color="0.4", lw=0.8, ls=":", label=r"margin $-\alpha(W_m)$ of each m")]
    for row, (key, label) in enumerate(zip(("exp_T1000", "pow_T1000"), keys)):
        rows = result["mechanism"][key]["rows"]
        ax = axes[row, 0]
        for r in rows:
            e = np.asarray(r["seeds"][0]["max_error"], float)
            ok = np.isfinite(e)
            ax.loglog(betas[ok], np.maximum(e[ok], 1e-17), ".-", label=f"m = {r['m']}")
            ax.axvline(r["margin"], color=ax.get_lines()[-1].get_color(), lw=0.6, ls=":")
        _mark_crossings(ax, betas, [np.asarray(r["seeds"][0]["max_error"], float) for r in rows])
        ax.set(title=f"free fit, target {label}, $T = 1000$", xlabel=r"perturbation size $\beta$",
               ylabel=r"$E_m(\beta)$ (max over perturbations)")
        ax.legend(handles=ax.get_legend_handles_labels()[0] + marks, fontsize=7)
        pr = result["paper_style"]["exp" if row == 0 else "pow"]["rows"]
        ax = axes[row, 1]
        for r in pr:
            e = np.asarray(r["seeds"][0]["max_error"], float)
            ok = np.isfinite(e)
            ax.loglog(betas_paper(result)[ok], np.maximum(e[ok], 1e-17), ".-", label=f"m = {r['m']}")
        _mark_crossings(ax, betas_paper(result), [np.asarray(r["seeds"][0]["max_error"], float) for r in pr])
        ax.set(title=f"paper-style grid fit, target {label}", xlabel=r"perturbation size $\beta$")
        ax.legend(handles=ax.get_legend_handles_labels()[0] + marks[:1], fontsize=7)
        ax = axes[row, 2]
        ms = [r["m"] for r in rows]
        ax.loglog(ms, [r["margin"] for r in rows], "o-", label=r"spectral margin $-\alpha(W_m)$")
        ax.loglog(ms, [r["first_unstable_median"] for r in rows], "s--", label=r"first-unstable $\beta$")
        bl = [r["blowup_median"] for r in rows]
        ax.loglog(ms, [b if np.isfinite(b) else np.nan for b in bl], "^-.", label=r"blow-up $\beta$ ($E > 10$)")
        ax.set(title=f"target {label}: boundary against width", xlabel="width $m$")
        ax.legend(fontsize=7)
    finish_figure(fig, result, extra="[WLL] Fig. 1, linear RNN approximants (first seed)")
    for ax in axes[:, 2]:  # the widths as they are, not 1-2-5 steps
        ax.set_xticks(ms, [str(m) for m in ms])
        ax.xaxis.set_minor_formatter(NullFormatter())
    atomic_savefig(fig, path, dpi=100)
    plt.close(fig)


def _mark_crossings(ax, betas, curves):
    """Mark where consecutive widths' curves cross (black x), as in [WLL] Fig. 1."""
    from ..stability import crossings_of

    for e1, e2 in zip(curves[:-1], curves[1:]):
        _, every = crossings_of(betas, e1, e2)
        for b in np.atleast_1d(np.asarray(every, float)):
            if np.isfinite(b):
                y = np.exp(np.interp(np.log(b), np.log(betas), np.log(np.where(np.isfinite(e1) & (e1 > 0), e1, np.nan))))
                if np.isfinite(y):
                    ax.plot([b], [y], "kx", ms=7)


def betas_paper(result: dict) -> np.ndarray:
    """The perturbation sizes of the paper-style curves of ``result`` (files written before they were stored: :data:`PAPER_BETAS`)."""
    return np.asarray(result.get("paper_betas", PAPER_BETAS), float)

EXPERIMENT = Experiment(name="fig1", title=TITLE, claim=CLAIM, protocols=PROTOCOLS, config=config, run=run,
                        plot=plot, verdict=verdict)
