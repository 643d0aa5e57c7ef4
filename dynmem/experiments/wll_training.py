r"""Training-based stability experiments of [WLL]: Fig. 2 and Figs. 4/7/8.

Called by :mod:`dynmem.reproduce` (``dynmem reproduce fig2`` / ``fig8b``, whose kind is still called ``fig4`` here); every
function returns or reads plain JSON-serialisable dicts.

Model (both experiments)
------------------------
A tanh CTRNN run through its forward-Euler recurrence
(:class:`~dynmem.models.EulerRNN`, ``dt = 1``; the residual form of [WLL]'s
public code, docs/theory.md section 4)::

    h_{k+1} = h_k + tanh(W h_k + U x_k + b),     y_k = c^T h_{k+1},

trained with :func:`dynmem.training.train` (Adam, MSE, hand-written BPTT) on
white-noise inputs ``x_k ~ N(0, 1)`` against the power-law target
``rho(t) = (t + 1)^{-1.5}`` (:class:`~dynmem.targets.PowerLawKernel`),
``Y = target.output_sequence(X, dt=1)``.  Both experiments start every width
and seed from the same initial model: ``W_0 = -diag(r)`` with ``r``
log-spaced in ``[0.1, 1]`` (jittered by the seed), ``U ~ N(0, 1)``, ``b = 0``,
``c ~ N(0, 1/m)``; they differ only in the parameterisation of ``W``.

* **fig2** ([WLL] Fig. 2): ``W`` is a free ``m x m`` matrix.  Perturbations
  are :func:`dynmem.stability.perturbation_curve` (block-spectral norm on
  ``(W, U, b, c)``; random directions plus the adversarial ``W + beta I``; the
  hill climb is off so both experiments use the same kinds of perturbation).
* **fig4** ([WLL] Figs. 4/7/8): ``W = diag(f(w))`` with a stable
  reparameterisation ``f`` (``"softplus"`` by default, ``f(w) = -log(1 + e^w)``)
  and the trainable parameters ``(w, U, b, c)`` are perturbed:
  ``W~ = diag(f(w + dw))``, which is Hurwitz for every ``dw``.  The norm of
  ``dw`` is the spectral norm of ``diag(dw)`` (``max_i |dw_i|``), so the ball is
  the image of the fig2 ball on the diagonal; the adversarial directions are
  ``dw = +- beta 1``.

Error: mean squared output error on a test batch (``error="test"``,
``X_test`` of shape (32, 100, 1), one per seed, shared by the widths).

Reported per width (lists over seeds): the curves ``E_m(beta)`` (ball-sup
``max`` and ``median``), ``E_m(0)``, the spectral margin ``-alpha(W_m)``, the
complex stability radius, the first-unstable beta (smallest grid ``beta`` at
which a sampled or adversarial perturbation makes ``W`` non-Hurwitz; ``inf``
if none does), the blow-up beta (``E_m(beta) > 10 E_m(0)``), a diagnostic
blow-up beta at one common level for all widths (``blowup_common``:
``E_m(beta) > 10 max_m' E_m'(0)``, so the threshold does not fall merely
because ``E_m(0)`` does) and the
crossing points; per seed the log-log slopes of
:func:`dynmem.stability.stability_boundary`, and their median / spread.

The acceptance statements of issue 4 are *reported* in ``result["findings"]``
and never used to tune anything.

Execution: each seed is one task (:func:`_seed_run`: train every width,
perturb, find the boundary; flat plain data) and :func:`_merge` builds the
result from the tasks in seed order.  With ``executor=`` the tasks run as a
:func:`dynmem.sweep.run_sweep` on that executor; the task draws its randomness
from its seed only, so the result is the serial one, number for number.
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np

from ..decay import loglog_slope
from ..models import EulerRNN
from ..reparam import get_reparam
from ..stability import PerturbationCurve, ball_sup, PerturbationEvaluator, unit_directions, perturbation_curve, stability_boundary
from ..targets import PowerLawKernel
from ..training import train

__all__ = ["run_fig2", "run_fig4", "plot_fig2", "plot_fig4", "SETTINGS"]

# The registry names of the two kinds (the tanh softplus experiment was registered as fig4 before it became
# fig8b, [WLL] Fig. 8b; the kind keeps its old name inside this module so earlier results stay comparable).
EXPERIMENT_NAMES = {"fig2": "fig2", "fig4": "fig8b"}

# Sizes: quick runs fig2 + fig4 together in well under a minute on 2 cores.
SETTINGS = {
    "quick": dict(widths=(4, 8, 16), T=100, n_train=32, n_test=32, steps=300, lr=1e-2, n_samples=30,
                  betas=(1e-3, 1.0, 13)),
    "full": dict(widths=(8, 16, 32, 64), T=100, n_train=128, n_test=32, steps=2000, lr=5e-3, n_samples=100,
                 betas=(1e-4, 2.0, 22)),
}
_P = 1.5          # rho(t) = (t + 1)^{-1.5}
_DT = 1.0         # Euler step = sampling step of the target
_K = 10.0         # blow-up factor
_RATE_RANGE = (0.1, 1.0)
_DIVERGENCE = 1e8
_SLOPE_TOL = 0.3  # as stability_boundary's slope_tol


# ----------------------------------------------------------------------------
# building blocks


def _initial_model(m: int, seed: int) -> EulerRNN:
    rng = np.random.default_rng([seed, m, 7])
    lo, hi = _RATE_RANGE
    rates = np.geomspace(lo, hi, m) * np.exp(rng.uniform(-0.1, 0.1, m))
    U = rng.standard_normal((m, 1))
    c = rng.standard_normal(m) / math.sqrt(m)
    return EulerRNN(-np.diag(rates), U, np.zeros(m), c, dt=_DT, activation="tanh")


def _data(seed: int, cfg: dict, target):
    rng = np.random.default_rng([seed, 11])
    X = rng.standard_normal((cfg["n_train"], cfg["T"], 1))
    X_test = rng.standard_normal((cfg["n_test"], cfg["T"], 1))
    return X, target.output_sequence(X, _DT), X_test


def _betas(cfg: dict) -> np.ndarray:
    lo, hi, n = cfg["betas"]
    return np.geomspace(lo, hi, n)


def _alpha_stack(W: np.ndarray) -> np.ndarray:
    return np.linalg.eigvals(W).real.max(axis=1)


def _first_unstable_free(model, betas, dW) -> float:
    """Smallest grid beta at which ``W + beta dW`` (the curve's own directions ``dW``, or ``+I``) is not Hurwitz.

    ``dW`` is ``curve.directions["W"]``: exactly the perturbations whose
    errors the curve holds.
    """
    W = np.asarray(model.W)
    margin = -float(np.linalg.eigvals(W).real.max())
    for beta in betas:
        if beta >= margin or np.any(_alpha_stack(W[None] + beta * dW) >= 0.0):
            return float(beta)
    return math.inf


def _reparam_curve(model: EulerRNN, w: np.ndarray, rp, target, betas, n_samples, X_test, seed):
    """``E_m(beta)`` under perturbations of the trainable ``(w, U, b, c)``; W = diag(f(w + dw)).

    Returns the curve and the number of perturbed ``W`` that were not Hurwitz
    (zero by construction; counted, not assumed).
    """
    rng = np.random.default_rng(seed)
    ev = PerturbationEvaluator(model, target, "test", None, X_test, _DT, 1, _DIVERGENCE)
    zero = {k: np.zeros((1, *v.shape)) for k, v in model.params().items()}
    error0 = float(ev.errors(zero)[0])
    m = w.size
    dirs = unit_directions(model, n_samples, "block-spectral", rng)  # U, b, c used; W replaced by dw
    g = rng.standard_normal((n_samples, m))
    dw = g / np.abs(g).max(axis=1, keepdims=True)  # |diag(dw)|_2 = max_i |dw_i| = 1
    W0 = np.asarray(model.W)
    n = betas.size
    sample_errors = np.empty((n, n_samples))
    shell_max = np.empty(n)
    shift_err = np.empty(n)
    kinds = []
    n_unstable = 0
    n_checked = 0
    for i, beta in enumerate(betas):
        wp = np.concatenate([w[None] + beta * dw, w[None] + beta * np.ones((2, m)) * np.array([[1.0], [-1.0]])])
        lam = rp.f(wp)  # (n_samples + 2, m)
        n_unstable += int(np.sum(lam.max(axis=1) >= 0.0))
        n_checked += lam.shape[0]
        Wp = np.zeros((lam.shape[0], m, m))
        Wp[:, np.arange(m), np.arange(m)] = lam
        delta = {"W": Wp - W0[None]}
        for k in ("U", "b", "c"):
            delta[k] = np.concatenate([beta * dirs[k], np.zeros((2, *dirs[k].shape[1:]))])
        errs = ev.errors(delta)
        sample_errors[i] = errs[:n_samples]
        shift_err[i] = float(errs[n_samples:].max())
        best = float(errs[:n_samples].max())
        kind = "random"
        if shift_err[i] > best:
            best, kind = shift_err[i], "shift"
        shell_max[i] = best
        kinds.append(kind)
    max_error, arg = ball_sup(shell_max)
    with np.errstate(invalid="ignore"):
        mean_error = sample_errors.mean(axis=1)
    curve = PerturbationCurve(
        betas=betas.copy(), max_error=max_error, shell_max_error=shell_max, mean_error=mean_error,
        median_error=np.median(sample_errors, axis=1), sample_errors=sample_errors,
        n_diverged=np.sum(~np.isfinite(sample_errors), axis=1).astype(int), shift_error=shift_err,
        ascent_error=np.full(n, np.nan), argmax_kind=tuple(kinds[j] for j in arg), argmax_beta=betas[arg].copy(),
        error0=error0, model=model,
        settings={"n_samples": n_samples, "norm": "block-spectral (w as diag(w))", "parameters": "w, U, b, c",
                  "reparam": rp.name, "error": "test", "adversarial": "dw = +-beta 1"},
        success=bool(np.isfinite(error0)), message="",
    )
    return curve, n_unstable, n_checked


def _floats(a) -> list:
    return [float(v) for v in np.asarray(a, dtype=float).ravel()]


def _summary(values) -> dict:
    """Median and spread of per-seed slopes (NaN entries ignored)."""
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    if v.size == 0:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan"), "std": float("nan"), "n": 0}
    return {"median": float(np.median(v)), "min": float(v.min()), "max": float(v.max()),
            "std": float(v.std(ddof=1)) if v.size > 1 else 0.0, "n": int(v.size)}


def _say(progress, msg):
    if progress:
        print(f"[dynmem.reproduce] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------
# the experiments


_PER_WIDTH_KEYS = ("error0", "max_error", "median_error", "margin", "radius", "first_unstable", "blowup",
                   "blowup_common", "train_loss", "train_steps", "train_success", "n_diverged")


def _config(quick: bool, cfg: dict | None) -> dict:
    return dict(SETTINGS["quick" if quick else "full"], **(cfg or {}))


def _seed_run(kind: str, seed: int, cfg: dict, reparam: str = "softplus", progress: bool = False) -> dict:
    """Everything one seed contributes: train every width, perturb, find the boundary.

    Returns flat plain data (numbers, strings and 1-d float/int arrays under
    ``"<m>/<name>"``, ``"slopes/<name>"`` ... keys), so that the dict can be a
    sweep task's result (:mod:`dynmem.sweep`) as well as be merged directly;
    :func:`_merge` turns a list of them into the experiment's result.
    """
    seed = int(seed)
    widths = tuple(int(m) for m in cfg["widths"])
    target = PowerLawKernel(_P)
    betas = _betas(cfg)
    rp = get_reparam(reparam) if kind == "fig4" else None
    out: dict = {"seed": seed}
    n_unstable_total = n_checked_total = 0
    X, Y, X_test = _data(seed, cfg, target)
    curves = {}
    fu = {}
    for m in widths:
        t0 = time.perf_counter()
        init = _initial_model(m, seed)
        res = train(init, X, Y, steps=cfg["steps"], lr=cfg["lr"], reparam=rp, rng=seed)
        model = res.model
        pseed = int(np.random.default_rng([seed, m, 3]).integers(2**31))
        if kind == "fig2":
            curve = perturbation_curve(model, target, betas, n_samples=cfg["n_samples"], error="test",
                                       X_test=X_test, dt=_DT, adversarial=True, ascent_steps=0, rng=pseed,
                                       divergence=_DIVERGENCE)
            fu[m] = _first_unstable_free(model, betas, curve.directions["W"])
        else:
            w = np.asarray(res.theta[:m], dtype=float)
            curve, n_uns, n_chk = _reparam_curve(model, w, rp, target, betas, cfg["n_samples"], X_test, pseed)
            n_unstable_total += n_uns
            n_checked_total += n_chk
            fu[m] = math.inf if n_uns == 0 else float("nan")
        curves[m] = curve
        out[f"{m}/train_loss"] = float(res.loss)
        out[f"{m}/train_steps"] = int(res.n_steps)
        out[f"{m}/train_success"] = bool(res.success)
        out[f"{m}/max_error"] = np.asarray(curve.max_error, dtype=float)
        out[f"{m}/median_error"] = np.asarray(curve.median_error, dtype=float)
        out[f"{m}/n_diverged"] = np.asarray(curve.n_diverged, dtype=np.int64)
        _say(progress, f"{kind} seed {seed} m={m}: train loss {res.loss:.3g} ({res.n_steps} steps), "
                       f"E(0) {curve.error0:.3g}, {time.perf_counter() - t0:.1f}s")
    sb = stability_boundary(curves, K=_K)
    # Diagnostic: one common level for every width, K * max_m E_m(0), so the
    # threshold does not fall just because E_m(0) falls with m.
    sb_common = stability_boundary(curves, K=_K, level=_K * float(np.max(sb.error0)))
    for i, m in enumerate(sb.widths):
        m = int(m)
        out[f"{m}/error0"] = float(sb.error0[i])
        out[f"{m}/margin"] = float(sb.margin[i])
        out[f"{m}/radius"] = float(sb.radius[i])
        out[f"{m}/blowup"] = float(sb.blowup[i])
        out[f"{m}/blowup_common"] = float(sb_common.blowup[i])
        out[f"{m}/first_unstable"] = float(fu[m])
    fu_arr = np.array([fu[m] for m in widths])
    slopes = {**{k: float(t.slope) for k, t in sb.trends.items()}, "first_unstable": loglog_slope(widths, fu_arr).slope,
              "blowup_common": float(sb_common.trends["blowup"].slope)}
    out["verdict"] = str(sb.verdict)
    out["note"] = str(sb.note)
    out["crossing"] = np.asarray(sb.crossing, dtype=float)
    out["n_crossings"] = len(sb.crossings)
    for j, c in enumerate(sb.crossings):
        out[f"crossings/{j}"] = np.asarray(c, dtype=float).ravel()
    out["slope_keys"] = np.array(list(slopes))  # keeps the order of the keys
    out["stderr_keys"] = np.array(list(sb.trends))
    for k, v in slopes.items():
        out[f"slopes/{k}"] = v
    for k, t in sb.trends.items():
        out[f"slope_stderr/{k}"] = float(t.stderr)
    out["n_unstable"] = int(n_unstable_total)
    out["n_checked"] = int(n_checked_total)
    return out


def _seed_task(seed: int, *, kind: str, cfg: dict, reparam: str, rng=None) -> dict:
    """:func:`_seed_run` as a :func:`dynmem.sweep.run_sweep` study.

    The sweep's ``rng`` is not used: the experiment draws its randomness from
    ``seed`` (as the serial run does), so both give the same numbers.
    """
    return _seed_run(kind, seed, cfg, reparam)


def _seeds_on(executor, kind: str, seeds, cfg: dict, reparam: str, progress: bool) -> list:
    """Run :func:`_seed_task` for every seed through the sweep machinery on ``executor``."""
    import functools
    import os
    import tempfile

    from ..sweep import Grid, load_sweep, run_sweep

    unique = list(dict.fromkeys(seeds))
    fn = functools.partial(_seed_task, kind=kind, cfg=cfg, reparam=reparam)
    with tempfile.TemporaryDirectory(prefix=f"dynmem-{kind}-") as tmp:
        store = os.path.join(tmp, "store")
        run_sweep(fn, Grid.zip(seed=unique), store, seed=0, executor=executor, progress=progress,
                  label=f"[dynmem.reproduce] {EXPERIMENT_NAMES.get(kind, kind)} seeds")
        table = load_sweep(store)
    bad = [r for r in table.records if r.status != "done"]
    if bad:
        r = bad[0]
        raise RuntimeError(f"{kind}: the task of seed {r.params['seed']} {r.status}: {r.error}\n{r.traceback}")
    by_seed = {int(r.params["seed"]): r.result for r in table.records}
    return [by_seed[s] for s in seeds]


def _merge(kind: str, quick: bool, seeds, cfg: dict, reparam: str, data: list, start: float) -> dict:
    """The experiment's result dict from the per-seed data of :func:`_seed_run` (in seed order)."""
    widths = tuple(int(m) for m in cfg["widths"])
    betas = _betas(cfg)
    per = {m: {k: [] for k in _PER_WIDTH_KEYS} for m in widths}
    per_seed = []
    n_unstable_total = n_checked_total = 0
    for d in data:
        for m in widths:
            p = per[m]
            p["train_loss"].append(float(d[f"{m}/train_loss"]))
            p["train_steps"].append(int(d[f"{m}/train_steps"]))
            p["train_success"].append(bool(d[f"{m}/train_success"]))
            p["max_error"].append(_floats(d[f"{m}/max_error"]))
            p["median_error"].append(_floats(d[f"{m}/median_error"]))
            p["n_diverged"].append([int(v) for v in np.asarray(d[f"{m}/n_diverged"]).ravel()])
        for m in widths:
            p = per[m]
            for k in ("error0", "margin", "radius", "blowup", "blowup_common", "first_unstable"):
                p[k].append(float(d[f"{m}/{k}"]))
        s_keys = [str(k) for k in np.asarray(d["slope_keys"]).ravel()]
        e_keys = [str(k) for k in np.asarray(d["stderr_keys"]).ravel()]
        per_seed.append({
            "seed": int(d["seed"]), "verdict": str(d["verdict"]), "note": str(d["note"]),
            "crossing": _floats(d["crossing"]),
            "crossings": [_floats(d[f"crossings/{j}"]) for j in range(int(d["n_crossings"]))],
            "slopes": {k: float(d[f"slopes/{k}"]) for k in s_keys},
            "slope_stderr": {k: float(d[f"slope_stderr/{k}"]) for k in e_keys},
        })
        n_unstable_total += int(d["n_unstable"])
        n_checked_total += int(d["n_checked"])

    slope_keys = ("margin", "blowup", "blowup_common", "error0", "radius", "crossing", "first_unstable")
    slopes = {k: {"per_seed": [s["slopes"][k] for s in per_seed],
                  **_summary([s["slopes"][k] for s in per_seed])} for k in slope_keys}
    width_rows = {}
    for m in widths:
        d = per[m]
        row = {k: v for k, v in d.items()}
        for k in ("error0", "margin", "blowup", "blowup_common", "radius", "first_unstable"):
            row[f"{k}_median"] = float(np.median(np.asarray(d[k], dtype=float)))
        width_rows[str(m)] = row
    med = {k: np.array([width_rows[str(m)][f"{k}_median"] for m in widths]) for k in ("error0", "margin", "blowup", "blowup_common")}
    findings = _findings(kind, widths, med, slopes, n_unstable_total, n_checked_total)
    verdicts = [s["verdict"] for s in per_seed]
    out = {
        "experiment": kind,
        "title": ("[WLL] Fig. 2: trained tanh RNN, power-law target" if kind == "fig2" else
                  f"[WLL] Figs. 4/7/8: trained tanh RNN with W = diag({reparam}(w)), power-law target"),
        "quick": bool(quick),
        "model": "EulerRNN (forward Euler of a tanh CTRNN, dt = 1): h_{k+1} = h_k + tanh(W h_k + U x_k + b), y_k = c^T h_{k+1}",
        "parameterisation": "free W (m x m)" if kind == "fig2" else f"W = diag(f(w)), f = {reparam}",
        "perturbed_parameters": "W, U, b, c" if kind == "fig2" else "w, U, b, c (W = diag(f(w + dw)))",
        "target": f"rho(t) = (t + 1)^-{_P} (PowerLawKernel({_P})), y_k = sum_j rho(j) x_(k-j)",
        "error": "test-set MSE on white-noise inputs (32 sequences x T steps)",
        "settings": {**{k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()}, "seeds": list(seeds),
                     "K": _K, "optimizer": "adam", "loss": "mse", "dt": _DT,
                     "init": "W0 = -diag(r), r log-spaced in [0.1, 1] (jittered), U ~ N(0,1), b = 0, c ~ N(0, 1/m)",
                     "perturbations": "random block-spectral directions (common random numbers) + adversarial shift"},
        "widths": list(widths),
        "betas": _floats(betas),
        "per_width": width_rows,
        "per_seed": per_seed,
        "slopes": slopes,
        "verdicts": verdicts,
        "findings": findings,
        "seconds": time.perf_counter() - start,
    }
    if kind == "fig4":
        out["reparam"] = reparam
        out["n_perturbed_W_unstable"] = int(n_unstable_total)
        out["n_perturbed_W_checked"] = int(n_checked_total)
    return out


def _run(kind: str, quick: bool, seeds, progress: bool, reparam: str = "softplus", cfg: dict | None = None,
         executor=None) -> dict:
    start = time.perf_counter()
    cfg = _config(quick, cfg)
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ValueError("`seeds` must hold at least one seed.")
    if executor is None:
        data = [_seed_run(kind, seed, cfg, reparam, progress) for seed in seeds]
    else:
        data = _seeds_on(executor, kind, seeds, cfg, reparam, progress)
    return _merge(kind, quick, seeds, cfg, reparam, data, start)


def _findings(kind, widths, med, slopes, n_unstable, n_checked) -> dict:
    """Plain statements of what was measured (not used to tune anything)."""
    # "Shrinks" = median log-log slope over seeds below -_SLOPE_TOL (the
    # stability_boundary default); "does not shrink" = above it.
    def shrinks(key):
        s = slopes[key]["median"]
        return bool(np.isfinite(s) and s < -_SLOPE_TOL)

    def falls(key):
        v = med[key]
        return bool(np.all(np.isfinite(v)) and v[-1] < v[0] and slopes[key]["median"] < 0)

    f = {
        "margin_slope_median": slopes["margin"]["median"],
        "blowup_slope_median": slopes["blowup"]["median"],
        "blowup_common_slope_median": slopes["blowup_common"]["median"],
        "error0_slope_median": slopes["error0"]["median"],
        "margin_shrinks_with_m": shrinks("margin"),
        "blowup_shrinks_with_m": shrinks("blowup"),
        "blowup_common_shrinks_with_m": shrinks("blowup_common"),
        "error0_falls_with_m": falls("error0"),
    }
    if kind == "fig2":
        f["paper_finding"] = "spectral margins and blow-up betas shrink with m"
        f["shown"] = bool(f["margin_shrinks_with_m"] and f["blowup_shrinks_with_m"])
    else:
        f["never_unstable"] = bool(n_unstable == 0)
        f["paper_finding"] = ("perturbations of w never make W unstable; the blow-up beta does not shrink with m; "
                              "E_m(0) falls with m (the margin of W itself may shrink)")
        s = slopes["blowup"]["median"]
        f["blowup_does_not_shrink"] = bool(np.isfinite(s) and s > -_SLOPE_TOL) or bool(np.all(np.isinf(med["blowup"])))
        f["shown"] = bool(f["never_unstable"] and f["blowup_does_not_shrink"] and f["error0_falls_with_m"])
    return f


def run_fig2(*, quick: bool = True, seeds=(0, 1, 2), progress: bool = False, cfg: dict | None = None,
             executor=None) -> dict:
    """[WLL] Fig. 2: trained tanh RNNs (free ``W``) on ``(t + 1)^{-1.5}``; see the module notes.

    Parameters
    ----------
    quick : bool
        ``True``: widths (4, 8, 16), 300 Adam steps, 30 perturbations per
        beta; ``False``: widths (8, 16, 32, 64), 2000 steps, 100 perturbations.
    seeds : sequence of int
        One run per seed (initial model, data, perturbations).
    progress : bool
        One line per trained width on stderr.
    cfg : dict, optional
        Overrides of :data:`SETTINGS` (``widths``, ``steps``, ``n_samples``,
        ``betas`` = (lo, hi, n), ``T``, ``n_train``, ``n_test``, ``lr``).
    executor : concurrent.futures.Executor, optional
        Run the seeds as tasks of a :func:`dynmem.sweep.run_sweep` on this
        executor (a process pool, ``distributed.Client.get_executor()``);
        the numbers are the same as the serial run's.  Default: one seed
        after another in this process.

    Returns
    -------
    dict
        JSON-serialisable (may contain ``inf`` / ``nan``): ``widths``,
        ``betas``, ``per_width[str(m)]`` (lists over seeds: ``error0``,
        ``max_error``, ``median_error``, ``margin``, ``radius``,
        ``first_unstable``, ``blowup``, training losses; and ``*_median``),
        ``per_seed`` (verdict, crossings, slopes), ``slopes`` (per-seed values,
        median, min, max, std), ``findings``, ``settings``, ``seconds``.
    """
    return _run("fig2", quick, seeds, progress, cfg=cfg, executor=executor)


def run_fig4(*, quick: bool = True, seeds=(0, 1, 2), progress: bool = False, reparam: str = "softplus",
             cfg: dict | None = None, executor=None) -> dict:
    """[WLL] Figs. 4/7/8: as :func:`run_fig2` with ``W = diag(f(w))``, perturbing ``(w, U, b, c)``.

    ``reparam`` is ``"softplus"`` (default) or ``"exp"``.  Extra keys:
    ``reparam``, ``n_perturbed_W_unstable`` (perturbed ``W`` that were not
    Hurwitz; 0 by construction) and ``n_perturbed_W_checked``.  ``executor``
    as in :func:`run_fig2`.
    """
    if reparam not in ("softplus", "exp"):
        raise ValueError(f"`reparam` must be 'softplus' or 'exp'; got {reparam!r}.")
    return _run("fig4", quick, seeds, progress, reparam=reparam, cfg=cfg, executor=executor)


# ----------------------------------------------------------------------------
# figures


def _positive(a):
    a = np.asarray(a, dtype=float)
    return np.where(np.isfinite(a) & (a > 0), a, np.nan)


def _plot(result: dict, path: str, title: str) -> None:
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "cairo"):
        try:
            matplotlib.use("Agg", force=True)
        except Exception:  # pragma: no cover - backend already locked
            pass
    import matplotlib.pyplot as plt

    widths = result["widths"]
    betas = np.asarray(result["betas"], dtype=float)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = plt.cm.viridis(np.linspace(0.0, 0.9, len(widths)))
    med_curves = []
    for col, m in zip(colors, widths):
        row = result["per_width"][str(m)]
        curves = np.asarray(row["max_error"], dtype=float)
        for c in curves:
            ax.plot(betas, _positive(c), color=col, lw=0.6, alpha=0.35)
        med = np.median(curves, axis=0)
        med_curves.append(med)
        ax.plot(betas, _positive(med), color=col, lw=2, marker="o", ms=3, label=f"m = {m}")
    # crossings of consecutive (median) curves, median over seeds
    for j in range(len(widths) - 1):
        xs = [s["crossing"][j] for s in result["per_seed"] if np.isfinite(s["crossing"][j])]
        if xs:
            x = float(np.median(xs))
            y = float(np.exp(np.interp(np.log(x), np.log(betas), np.log(np.clip(_positive(med_curves[j + 1]), 1e-300, None)))))
            if np.isfinite(y):
                ax.plot([x], [y], marker="x", color="k", ms=9, mew=2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"$\beta$")
    ax.set_ylabel(r"$E_m(\beta)$ (test MSE, sup over perturbations)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, title="x: crossings (median)", title_fontsize=7)

    ms = np.asarray(widths, dtype=float)
    for key, lab, mk in (("margin", r"margin $-\alpha(W_m)$", "o"), ("blowup", r"blow-up $\beta$ ($E>10E_m(0)$)", "s"),
                         ("first_unstable", "first-unstable $\\beta$", "^")):
        vals = np.array([result["per_width"][str(m)][key] for m in widths], dtype=float)  # (w, seeds)
        vals = _positive(vals)
        if not np.any(np.isfinite(vals)):
            continue
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                med = np.nanmedian(vals, axis=1)
                lo, hi = np.nanmin(vals, axis=1), np.nanmax(vals, axis=1)
        ax2.errorbar(ms, med, yerr=[med - lo, hi - med], marker=mk, capsize=3, label=lab)
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("width m")
    ax2.set_ylabel(r"$\beta$")
    f = result.get("findings", {})
    ax2.set_title(f"slopes: margin {f.get('margin_slope_median', float('nan')):.2f}, "
                  f"blow-up {f.get('blowup_slope_median', float('nan')):.2f} (median over seeds)", fontsize=9)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_fig2(result: dict, path: str) -> None:
    """Write the Fig. 2 PNG: log-log ``E_m(beta)`` per width (crossings marked) and margin / blow-up vs ``m``."""
    _plot(result, path, "Fig. 2: tanh RNN (free W), $\\rho(t)=(t+1)^{-1.5}$")


def plot_fig4(result: dict, path: str) -> None:
    """Write the Fig. 4 PNG (as :func:`plot_fig2`, reparameterised ``W``)."""
    _plot(result, path, f"Fig. 4: W = diag({result.get('reparam', 'f')}(w)), perturbing w; "
                        "$\\rho(t)=(t+1)^{-1.5}$")
