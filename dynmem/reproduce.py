"""Reproductions of the [WLL] experiments: ``dynmem reproduce <experiment>``.

Experiments (THEORY.md section 4):

``fig1``
    Linear RNNs as exponential sums fitted to ``rho = 0.9^t`` and
    ``rho = (t + 1)^{-1.1}``, in two variants:

    * *mechanism* (free exponents by variable projection, ``T = 1000``,
      ``m in {1, 2, 4, 6, 8}``): the approximants' spectral margin and the
      first-unstable / blow-up betas, with a ``T = 100`` horizon check;
    * *paper-style* (non-negative least squares on the grid ``mu_k = 0.5 k / m``,
      ``m in {2, 4, 6, 8, 14}``, ``t in {1..100}``): the error curves of the figure.
``fig2``, ``fig4``
    tanh RNNs trained on ``(t + 1)^{-1.5}``, without and with a stable
    reparameterisation (:mod:`dynmem._repro_training`).
``fig11``
    The memory of the multistable tanh system ``W = [[1, 1], [-4, -3]]``.

Each experiment writes ``<name>.json`` (every number) and ``<name>.png`` into
the output folder, atomically; an experiment whose JSON is already there for
the same mode is not recomputed (resume after an interruption).  Errors are
sup-norms of the kernel error on the time grid ([WLL] Fig. 1), perturbations
are ``>= 100`` per beta in the block-spectral norm, over several seeds.
The numbers are reported as measured; nothing is tuned to hit the paper.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import time

import numpy as np

from .io import atomic_savefig, atomic_write_json, read_json

__all__ = ["EXPERIMENTS", "reproduce", "run_fig1", "run_fig11"]


def _slope(x, y):
    """Log-log slope of finite positive pairs (NaN when fewer than two)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0])


def first_exceed(betas, e, level):
    from .stability import first_exceed as fe

    return float(fe(np.asarray(betas, float), np.asarray(e, float), level))


def _fig1_study(name, target, t, widths, variant, betas, seeds, n_samples, progress, *, blowup_level=10.0):
    """Fit every width, perturb each fit with every seed; per-width numbers and per-seed curves."""
    from .spectra import spectral_abscissa
    from .stability import perturbation_curve
    from .train import fit_exponential_sum

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
        if progress:
            print(f"  {name} m={m}: E(0)={fit.sup_error:.3g} margin={margin:.4g} "
                  f"first-unstable={rows[-1]['first_unstable_median']:.3g} blow-up={rows[-1]['blowup_median']:.3g}",
                  file=sys.stderr, flush=True)
    return rows


def _trends(rows, widths_for_slope):
    sel = [r for r in rows if r["m"] in widths_for_slope]
    ms = [r["m"] for r in sel]
    out = {"widths": ms}
    out["margin_slope"] = _slope(ms, [r["margin"] for r in sel])
    out["error0_slope"] = _slope(ms, [r["error0"] for r in sel])
    per_seed_fu, per_seed_bu = [], []
    n_seeds = len(sel[0]["seeds"]) if sel else 0
    for k in range(n_seeds):
        per_seed_fu.append(_slope(ms, [r["seeds"][k]["first_unstable"] for r in sel]))
        per_seed_bu.append(_slope(ms, [r["seeds"][k]["blowup"] for r in sel]))
    out["first_unstable_slope_per_seed"] = per_seed_fu
    out["blowup_slope_per_seed"] = per_seed_bu
    out["first_unstable_slope_median"] = float(np.nanmedian(per_seed_fu)) if per_seed_fu else float("nan")
    out["blowup_slope_median"] = float(np.nanmedian(per_seed_bu)) if per_seed_bu else float("nan")
    return out


def run_fig1(*, quick: bool = True, seeds=(0, 1, 2), progress: bool = False) -> dict:
    """[WLL] Fig. 1 in its two variants (see the module docstring); returns every number."""
    from .targets import ExponentialKernel, PowerLawKernel

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
            if progress:
                print(f"fig1 mechanism: {key} target, T = {horizon}", file=sys.stderr, flush=True)
            rows = _fig1_study(f"{key}/T={horizon}", target, t, widths, "free", betas, seeds, n_samples, progress)
            mech[f"{key}_T{horizon}"] = dict(rows=rows, trends=_trends(rows, (2, 4, 6, 8)))
    out["mechanism"] = mech

    paper = {}
    t = np.arange(1, 101, dtype=float)
    pbetas = np.concatenate([[0.0], 5e-4 * 2.0 ** np.arange(0, 21)])
    for key, target in targets.items():
        if progress:
            print(f"fig1 paper-style: {key} target", file=sys.stderr, flush=True)
        rows = _fig1_study(f"paper/{key}", target, t, (2, 4, 6, 8, 14), "grid", pbetas[1:], seeds[:1] if quick else seeds,
                           n_samples, progress)
        paper[key] = dict(rows=rows, trends=_trends(rows, (2, 4, 6, 8, 14)))
    out["paper_style"] = paper

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

    betas = np.asarray(result["betas"], float)
    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    for row, (key, label) in enumerate((("exp_T1000", "0.9^t"), ("pow_T1000", "(t+1)^-1.1"))):
        rows = result["mechanism"][key]["rows"]
        ax = axes[row, 0]
        for r in rows:
            e = np.asarray(r["seeds"][0]["max_error"], float)
            ok = np.isfinite(e)
            ax.loglog(betas[ok], np.maximum(e[ok], 1e-17), ".-", label=f"m={r['m']}")
            ax.axvline(r["margin"], color=ax.get_lines()[-1].get_color(), lw=0.6, ls=":")
        _mark_crossings(ax, betas, [np.asarray(r["seeds"][0]["max_error"], float) for r in rows])
        ax.set(title=f"free fit, target {label}, T=1000", xlabel="beta", ylabel="E_m(beta) (max over perturbations)")
        ax.legend(fontsize=7)
        pr = result["paper_style"]["exp" if row == 0 else "pow"]["rows"]
        ax = axes[row, 1]
        for r in pr:
            e = np.asarray(r["seeds"][0]["max_error"], float)
            ok = np.isfinite(e)
            ax.loglog(betas_paper(result)[ok], np.maximum(e[ok], 1e-17), ".-", label=f"m={r['m']}")
        _mark_crossings(ax, betas_paper(result), [np.asarray(r["seeds"][0]["max_error"], float) for r in pr])
        ax.set(title=f"paper-style grid fit, target {label}", xlabel="beta")
        ax.legend(fontsize=7)
        ax = axes[row, 2]
        ms = [r["m"] for r in rows]
        ax.loglog(ms, [r["margin"] for r in rows], "o-", label="spectral margin -alpha(W_m)")
        ax.loglog(ms, [r["first_unstable_median"] for r in rows], "s--", label="first-unstable beta")
        bl = [r["blowup_median"] for r in rows]
        ax.loglog(ms, [b if np.isfinite(b) else np.nan for b in bl], "^-.", label="blow-up beta (E > 10)")
        ax.set(title=f"target {label}: boundary vs m", xlabel="m")
        ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=100)
    plt.close(fig)


def _mark_crossings(ax, betas, curves):
    """Mark where consecutive widths' curves cross (black x), as in [WLL] Fig. 1."""
    from .stability import crossings_of

    for e1, e2 in zip(curves[:-1], curves[1:]):
        _, every = crossings_of(betas, e1, e2)
        for b in np.atleast_1d(np.asarray(every, float)):
            if np.isfinite(b):
                y = np.exp(np.interp(np.log(b), np.log(betas), np.log(np.where(np.isfinite(e1) & (e1 > 0), e1, np.nan))))
                if np.isfinite(y):
                    ax.plot([b], [y], "kx", ms=7)


def betas_paper(result):
    return 5e-4 * 2.0 ** np.arange(0, 21)


def run_fig11(*, quick: bool = True, seeds=(0,), progress: bool = False) -> dict:
    """The multistable tanh system of THEORY.md section 2 ([WLL] Fig. 11)."""
    from scipy.integrate import solve_ivp

    from .memory import fit_decay, memory_function
    from .models import CTRNN
    from .spectra import spectral_abscissa

    W = np.array([[1.0, 1.0], [-4.0, -3.0]])
    model = CTRNN(W, np.eye(2), np.zeros(2), np.array([1.0, 0.0]), activation="tanh")
    t = np.linspace(0, 60, 600 if quick else 2400)
    amps = [0.01, 0.1, 1.0, 3.0, 5.0]
    curves = {}
    for a in amps:
        res = memory_function(model, t, amplitudes=[a])
        fit = fit_decay(t, res.values)
        curves[str(a)] = dict(values=res.values, kind=fit.kind, rate=fit.rate, note=fit.note)
        if progress:
            print(f"  fig11 amplitude {a}: {fit.kind}", file=sys.stderr, flush=True)
    n = 9 if quick else 21
    grid = np.linspace(-0.95, 0.95, n)
    ends = []
    for x0 in grid:
        for y0 in grid:
            sol = solve_ivp(lambda _t, v: (1 - v * v) * (W @ v), (0, 200), [x0, y0], rtol=1e-9, atol=1e-12)
            ends.append(sol.y[:, -1])
    ends = np.array(ends)
    return dict(experiment="fig11", quick=quick, alpha=spectral_abscissa(W), t=t, amplitudes=amps, curves=curves,
                grid=grid, ends=ends, starts_to_zero=int(np.sum(np.max(np.abs(ends), axis=1) < 1e-3)),
                starts_to_corners=int(np.sum(np.min(np.abs(ends), axis=1) > 0.999)))


def plot_fig11(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    t = np.asarray(result["t"], float)
    for a, c in result["curves"].items():
        v = np.asarray([float(x) for x in c["values"]])
        ok = v > 0
        axes[0].semilogy(t[ok], v[ok], label=f"amplitude {a}: {c['kind']}")
    axes[0].set(title=f"memory of tanh W=[[1,1],[-4,-3]] (alpha = {result['alpha']:.2g})", xlabel="t", ylabel="M(t)")
    axes[0].legend(fontsize=7)
    grid = np.asarray(result["grid"], float)
    ends = np.asarray(result["ends"], float)
    X, Y = np.meshgrid(grid, grid, indexing="ij")
    to_zero = np.max(np.abs(ends), axis=1) < 1e-3
    axes[1].scatter(X.ravel()[to_zero], Y.ravel()[to_zero], s=12, label="-> 0")
    axes[1].scatter(X.ravel()[~to_zero], Y.ravel()[~to_zero], s=12, label="-> corner")
    axes[1].set(title="basins of dv/dt = (1 - v^2)(W v)", xlabel="v1", ylabel="v2")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=100)
    plt.close(fig)


def _lazy_experiment(module: str, name: str):
    """``(run, plot)`` calling ``run_<name>`` / ``plot_<name>`` of ``dynmem.<module>``, imported on first use."""
    def _mod():
        return importlib.import_module(f"{__package__}.{module}")

    def run(*, quick=True, seeds=(0, 1, 2), progress=False, executor=None):
        return getattr(_mod(), f"run_{name}")(quick=quick, seeds=seeds, progress=progress, executor=executor)

    def plot(result, path):
        return getattr(_mod(), f"plot_{name}")(result, path)

    return run, plot


EXPERIMENTS = {
    "fig1": (run_fig1, plot_fig1),
    "fig2": _lazy_experiment("_repro_training", "fig2"),
    "fig4": _lazy_experiment("_repro_training", "fig4"),
    "fig11": (run_fig11, plot_fig11),
    "kernel-limit": _lazy_experiment("_repro_kernel", "kernel_limit"),  # [LSS]
}


def _accepts_executor(run) -> bool:
    """Whether an experiment's ``run`` takes the documented ``executor`` keyword."""
    try:
        params = inspect.signature(run).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return False
    return "executor" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def reproduce(experiments=("all",), *, out: str = "dynmem-results", quick: bool = True, seeds=(0, 1, 2),
              resume: bool = True, progress: bool = False, executor=None) -> dict:
    """Run experiments, writing ``<out>/<name>.json`` and ``<out>/<name>.png``; return {name: json path}.

    With ``resume=True`` an experiment whose JSON exists for the same mode
    (quick/full) and seeds is skipped.

    ``executor`` (a :class:`concurrent.futures.Executor`: a process pool, or
    ``distributed.Client.get_executor()``, see :func:`dynmem.sweep.dask_executor`)
    is handed to every experiment whose ``run`` accepts an ``executor``
    keyword (fig2 and fig4 run their seeds as :mod:`dynmem.sweep` tasks on
    it, with the same numbers as the serial run); the other experiments run
    in this process.
    """
    names = list(EXPERIMENTS) if "all" in experiments else list(experiments)
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        raise ValueError(f"`experiments` must be among {sorted(EXPERIMENTS)} or 'all'; got {unknown}.")
    os.makedirs(out, exist_ok=True)
    written = {}
    for name in names:
        jpath, ppath = os.path.join(out, f"{name}.json"), os.path.join(out, f"{name}.png")
        if resume and os.path.exists(jpath) and os.path.exists(ppath):
            try:
                old = read_json(jpath)
                if old.get("quick") == quick and old.get("seeds") == list(seeds) and old.get("complete"):
                    if progress:
                        print(f"{name}: already in {jpath}, skipped", file=sys.stderr, flush=True)
                    written[name] = jpath
                    continue
            except (OSError, ValueError):
                pass  # unreadable: recompute
        run, plot = EXPERIMENTS[name]
        t0 = time.perf_counter()
        if progress:
            print(f"{name}: running ({'quick' if quick else 'full'})", file=sys.stderr, flush=True)
        kwargs = {"executor": executor} if executor is not None and _accepts_executor(run) else {}
        if executor is not None and not kwargs and progress:
            print(f"{name}: has no per-seed tasks for the executor; runs in this process", file=sys.stderr, flush=True)
        result = run(quick=quick, seeds=tuple(seeds), progress=progress, **kwargs)
        result.update(quick=quick, seeds=list(seeds), seconds=time.perf_counter() - t0, complete=True)
        plot(result, ppath)
        atomic_write_json(jpath, result)  # last: its presence marks the experiment finished
        written[name] = jpath
        if progress:
            print(f"{name}: done in {result['seconds']:.1f} s -> {jpath}, {ppath}", file=sys.stderr, flush=True)
    return written
